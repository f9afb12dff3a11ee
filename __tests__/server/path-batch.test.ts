/**
 * `POST /_api/v1/paths`, the Action's proxy pushing small paths many to a request: every NAR is
 * verified as a NAR upload is, the narinfos are stored in order once all NARs are in, and a fresh
 * store substitutes the result. A batch with anything wrong gets a 4xx naming the path and what is
 * wrong, and stores no narinfo.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { PATH_BATCH_PATH, type PathBatchEntry } from '../../src/contracts/path-batch.js';
import { Hash } from '../../src/nix/hash.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { nix, nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  rawRequest,
  startTestServer,
  storedState,
  substituteFresh,
  type NarUpload,
  type StoredState,
  type TestServer,
  zstdFile as zstd,
} from '../support/server.js';

const MAX_NAR = 256 * 1024;
let server: TestServer;
let writer: string;

beforeAll(async () => {
  server = await startTestServer({ maxNarSize: MAX_NAR });
  writer = await server.ciToken();
});
afterAll(async () => {
  await server?.close();
});

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

/** A chain of `count` paths, references first, each with its upload. */
async function chain(count: number, bytes = 1000): Promise<NarUpload[]> {
  const [top] = await nixBuild(randomChainExpr(count, bytes));
  const closure = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
  const uploads = await Promise.all(closure.map((path) => narUploadFor(path)));
  // Path i refers to path i-1: fewer references first.
  return uploads.sort(
    (a, b) => a.narinfo.references.length - b.narinfo.references.length || (a.storePath === top ? 1 : -1),
  );
}

function header(
  upload: NarUpload,
  file: Buffer,
  overrides: Partial<Record<keyof PathBatchEntry, unknown>> = {},
): Buffer {
  const entry = {
    store_path: upload.storePath,
    nar_hash: upload.narinfo.narHash.toString(),
    nar_size: upload.nar.length,
    references: upload.narinfo.references,
    compression: 'zstd',
    file_size: file.length,
    ...overrides,
  };
  return Buffer.from(`${JSON.stringify(entry)}\n`);
}

/** The batch body of `uploads`, each NAR compressed with zstd. */
async function batchOf(uploads: NarUpload[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const upload of uploads) {
    const file = await zstd(upload.nar);
    parts.push(header(upload, file), file);
  }
  return Buffer.concat(parts);
}

const post = (body: Buffer | string, token: string | null = writer, headers: Record<string, string> = {}) =>
  rawRequest(server.url, 'POST', PATH_BATCH_PATH, {
    headers: { ...(token ? auth(token) : {}), ...headers },
    body,
  });

describe('a good batch', () => {
  it('stores every path, answers each file, and makes a cache Nix substitutes the closure from', async () => {
    const uploads = await chain(3);
    const before = storedState(server.dataDir);
    const res = await post(await batchOf(uploads));
    expect(res.status).toBe(200);
    const { paths } = JSON.parse(res.text) as {
      paths: { store_path: string; outcome: string; url: string; file_size: number }[];
    };
    expect(paths.map((p) => [p.store_path, p.outcome])).toEqual(uploads.map((u) => [u.storePath, 'created']));
    const after = storedState(server.dataDir);
    expect(after.narinfos - before.narinfos).toBe(3);
    expect(after.audit - before.audit).toBe(3);
    expect(after.uploads - before.uploads).toBe(3);

    // The served narinfo states the file the server stored for it (its size: the batch's files are
    // not hashed as files, so no FileHash), signed by the server.
    const reader = await server.readToken(['acme/*']);
    for (const [index, upload] of uploads.entries()) {
      const text = await (
        await fetch(`${server.url}/${upload.hashPart}.narinfo`, { headers: auth(reader) })
      ).text();
      const served = parseNarInfo(text);
      const file = await (
        await fetch(`${server.url}/${served.url}`, { headers: auth(reader) })
      ).arrayBuffer();
      expect([served.url, served.fileSize, served.fileHash, served.references]).toEqual([
        paths[index]!.url,
        paths[index]!.file_size,
        undefined,
        upload.narinfo.references,
      ]);
      expect(file.byteLength).toBe(paths[index]!.file_size);
      expect(served.sigs).toHaveLength(1);
    }
    const top = uploads[2]!.storePath;
    const { closure } = await substituteFresh(server, top, reader);
    expect(closure).toEqual(uploads.map((u) => u.storePath).sort());

    // Sent again: every path is there already.
    const again = await post(await batchOf(uploads));
    expect(again.status).toBe(200);
    expect((JSON.parse(again.text) as { paths: { outcome: string }[] }).paths.map((p) => p.outcome)).toEqual([
      'exists',
      'exists',
      'exists',
    ]);
    expect(storedState(server.dataDir).narinfos).toBe(after.narinfos);
  });

  it('takes NARs uncompressed too', async () => {
    const [upload] = await chain(1);
    const res = await post(
      Buffer.concat([header(upload!, upload!.nar, { compression: 'none' }), upload!.nar]),
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({
      paths: [{ outcome: 'created', file_size: upload!.nar.length }],
    });
  });
});

describe('batches that do not check out', () => {
  let uploads: NarUpload[];
  let before: StoredState;

  beforeAll(async () => {
    uploads = await chain(2);
  });
  beforeEach(() => {
    before = storedState(server.dataDir);
  });
  const expectNoNarInfo = () => {
    const now = storedState(server.dataDir);
    expect([now.narinfos, now.audit]).toEqual([before.narinfos, before.audit]);
  };

  it('a NAR that does not hash to its entry: 400 naming the path and both hashes, no narinfo at all', async () => {
    const [first, second] = uploads;
    const good = await zstd(first!.nar);
    const wrong = await zstd(first!.nar);
    const body = Buffer.concat([header(first!, good), good, header(second!, wrong), wrong]);
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.text).toBe(
      `paths[1] (${second!.storePath}): NAR hashes to ${first!.narinfo.narHash.toString()}, not to ` +
        `${second!.narinfo.narHash.toString()} as its name says\n`,
    );
    expectNoNarInfo();
  });

  it('a NarSize that is not the NAR’s: 400, no narinfo', async () => {
    const [first] = uploads;
    const file = await zstd(first!.nar);
    const res = await post(Buffer.concat([header(first!, file, { nar_size: first!.nar.length + 8 }), file]));
    expect(res.status).toBe(400);
    expect(res.text).toBe(
      `paths[0] (${first!.storePath}): NarSize ${first!.nar.length + 8} does not match the uploaded NAR ` +
        `(${first!.nar.length} bytes)\n`,
    );
    expectNoNarInfo();
  });

  it('header lines that are not an entry: 400 naming the entry and the problem', async () => {
    const [first] = uploads;
    const file = await zstd(first!.nar);
    const cases: [Buffer, string][] = [
      [Buffer.from('not json\n'), 'paths[0]: its header line is not JSON'],
      [
        header(first!, file, { file_size: 'many' }),
        'paths[0]: its header line lacks a field or has one of the wrong type',
      ],
      [header(first!, file, { nar_hash: 'sha256:nothex' }), 'paths[0]: '],
      [header(first!, file, { nar_hash: Hash.of('sha1', first!.nar).toString() }), 'is not a sha256 hash'],
      [header(first!, file, { compression: 'bzip2' }), "paths[0]: unsupported compression 'bzip2'"],
      // A field cannot smuggle lines into the narinfo the server writes.
      [header(first!, file, { references: ['x\nURL: nar/evil.nar'] }), 'paths[0]: References'],
      [
        header(first!, file, { ca: 'fixed:r:sha256:x\nSig: evil' }),
        "paths[0]: field 'CA' contains a newline",
      ],
      [header(first!, file, { store_path: '/tmp/evil' }), 'paths[0]: StorePath'],
    ];
    for (const [line, message] of cases) {
      const res = await post(Buffer.concat([line, file]));
      expect([res.status, res.text]).toEqual([400, expect.stringContaining(message)]);
    }
    expectNoNarInfo();
    expect(storedState(server.dataDir)).toEqual(before);
  });

  it('a body that ends early, or has bytes after its last NAR: 400; an empty one: 400', async () => {
    const [first, second] = uploads;
    const file = await zstd(first!.nar);
    const short = await post(Buffer.concat([header(first!, file), file.subarray(0, 10)]));
    expect([short.status, short.text]).toEqual([
      400,
      `paths[0] (${first!.storePath}): the path batch ends ${file.length - 10} bytes before its NAR does\n`,
    ]);
    const tail = await post(Buffer.concat([header(first!, file), file, Buffer.from('{"store_path"')]));
    expect([tail.status, tail.text]).toEqual([400, 'paths[1]: the path batch ends inside a header line\n']);
    const second2 = await zstd(second!.nar);
    const long = await post(
      Buffer.concat([header(second!, second2), second2, Buffer.alloc(70 * 1024, 0x61)]),
    );
    expect([long.status, long.text]).toEqual([
      400,
      'paths[1]: a header line of the path batch is longer than 65536 bytes\n',
    ]);
    const empty = await post(Buffer.alloc(0));
    expect([empty.status, empty.text]).toEqual([400, 'the path batch holds no paths\n']);
    expectNoNarInfo();
  });

  it('no token: 401; a read-only token: 403; over the size limit: 413; none is asked for the body', async () => {
    const body = await batchOf(uploads);
    const withExpect = { expect: '100-continue' };
    const anonymous = await post(body, null, withExpect);
    expect([anonymous.status, anonymous.continued]).toEqual([401, false]);
    const reader = await post(body, await server.readToken(['acme/*']), withExpect);
    expect([reader.status, reader.continued]).toEqual([403, false]);
    const large = await post(Buffer.alloc(MAX_NAR + 1), writer, withExpect);
    expect([large.status, large.continued, large.text]).toEqual([
      413,
      false,
      `path batch of ${MAX_NAR + 1} bytes is larger than the limit of ${MAX_NAR} bytes\n`,
    ]);
    expect(storedState(server.dataDir)).toEqual(before);
  });
});
