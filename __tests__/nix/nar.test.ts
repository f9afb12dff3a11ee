import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { promisify } from 'node:util';
import { Hash } from '../../src/nix/hash.js';
import {
  CompressionError,
  createCompressor,
  createDecompressor,
  type NarCompression,
  type NarDigest,
} from '../../src/nix/nar.js';
import { createNarHasher } from '../../src/nix/nar-hasher.js';
import { NAR_EXTENSIONS } from '../../src/nix/nar-url.js';
import { digestNarFile, hashNar } from './nar-digest.js';
import { serializeNarInfo } from '../../src/nix/narinfo.js';
import { generateSecretKey, narInfoFingerprint, signFingerprint } from '../../src/nix/signing.js';
import { StorePath } from '../../src/nix/store-path.js';
import { nix, nixBuild, randomChainExpr, salt } from '../support/nix.js';
import { copyToFileCache, pathInfo, removeFileCaches, substituteIntoFreshStore } from './helpers.js';

const execFileAsync = promisify(execFile);
const here = fileURLToPath(new URL('.', import.meta.url));
const MiB = 1024 * 1024;

const work = mkdtempSync(join(tmpdir(), 'sluice-nar-'));
const made: string[] = [];

/** `nix-store --dump` of a path into a file, streamed by the shell (never through this process). */
async function dump(path: string, file: string): Promise<string> {
  await nix('sh', ['-c', 'nix-store --dump "$1" > "$2"', 'sh', path, file]);
  return file;
}

/** What Nix says the NAR hash and size are, in two ways that must agree. */
async function nixNarDigest(path: string): Promise<{ narHash: string; narSize: number }> {
  const [info] = await pathInfo([path]);
  const queried = (await nix('nix-store', ['--query', '--hash', path])).trim();
  expect(Hash.parse(queried).toSRI()).toBe(info!.narHash);
  return { narHash: Hash.parse(info!.narHash).toString(), narSize: info!.narSize };
}

/**
 * createNarHasher fed `chunks` as the server's upload path feeds it: each chunk through one reused
 * buffer, overwritten as soon as its write has resolved.
 */
async function narHasherDigest(chunks: Buffer[], compression: string): Promise<NarDigest> {
  const hasher = createNarHasher(compression);
  const reused = Buffer.alloc(Math.max(1, ...chunks.map((c) => c.length)));
  try {
    for (const chunk of chunks) {
      chunk.copy(reused);
      await hasher.write(reused.subarray(0, chunk.length));
      reused.fill(0xee);
    }
    return await hasher.end();
  } finally {
    hasher.destroy();
  }
}

/** hashNar in a child process, which also reports how much its peak RSS grew. */
async function hashInChild(file: string, compression: string) {
  const { stdout } = await execFileAsync(process.execPath, [
    // A small young generation makes V8 free spent stream buffers promptly, so the RSS left shows
    // what the code holds on to rather than garbage not yet collected (default: 15-30 MB float).
    '--max-semi-space-size=1',
    '--experimental-transform-types',
    '--no-warnings',
    '--import',
    join(here, 'ts-hooks.mjs'),
    join(here, 'hash-nar-child.ts'),
    file,
    compression,
  ]);
  return JSON.parse(stdout) as { narHash: string; narSize: number; rssGrowth: number };
}

async function compress(data: Buffer, compression: NarCompression): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(
    Readable.from([data]),
    createCompressor(compression),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) chunks.push(chunk);
    },
  );
  return Buffer.concat(chunks);
}

async function compressFile(input: string, compression: NarCompression, output: string): Promise<string> {
  await pipeline(createReadStream(input), createCompressor(compression), createWriteStream(output));
  return output;
}

afterAll(async () => {
  removeFileCaches();
  rmSync(work, { recursive: true, force: true });
  if (made.length > 0) await nix('nix-store', ['--delete', ...made]).catch(() => undefined);
});

describe('hashNar on 100 MiB NARs made by nix-store --dump, in a child process with flat memory', () => {
  let randomNar = '';
  let textNar = '';
  let randomPath = '';
  let textPath = '';

  beforeAll(async () => {
    const tag = salt();
    const drv = (name: string, script: string) =>
      `(derivation { name = "${name}"; salt = "${tag}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "${script}" ]; })`;
    [randomPath, textPath] = (await nixBuild(
      `[ ${drv('sluice-nar-random', `/usr/bin/head -c ${100 * MiB} /dev/urandom > $out`)} ` +
        `${drv('sluice-nar-text', `/usr/bin/yes sluice-nar-test | /usr/bin/head -c ${100 * MiB} > $out`)} ]`,
    )) as [string, string];
    made.push(randomPath, textPath);
    randomNar = await dump(randomPath, join(work, 'random.nar'));
    textNar = await dump(textPath, join(work, 'text.nar'));
  });

  it('none: the NarHash and NarSize Nix reports', async () => {
    const expected = await nixNarDigest(randomPath);
    expect(expected.narSize).toBeGreaterThan(100 * MiB);
    expect(statSync(randomNar).size).toBe(expected.narSize);
    const result = await hashInChild(randomNar, 'none');
    expect({ narHash: result.narHash, narSize: result.narSize }).toEqual(expected);
    expect(result.rssGrowth).toBeLessThan(expected.narSize / 3);
  });

  it('zstd (compressed by createCompressor): the NarHash and NarSize Nix reports', async () => {
    const expected = await nixNarDigest(randomPath);
    const file = await compressFile(randomNar, 'zstd', join(work, 'random.nar.zst'));
    const result = await hashInChild(file, 'zstd');
    rmSync(file);
    expect({ narHash: result.narHash, narSize: result.narSize }).toEqual(expected);
    expect(result.rssGrowth).toBeLessThan(expected.narSize / 3);
  });

  it('xz by `xz -0 -T2`: 100 MiB from a tiny multi-block file, output pulled with backpressure', async () => {
    const expected = await nixNarDigest(textPath);
    const file = join(work, 'text.nar.xz');
    await execFileAsync('sh', ['-c', 'xz -0 -T2 -c "$1" > "$2"', 'sh', textNar, file]);
    expect(statSync(file).size).toBeLessThan(expected.narSize / 100);
    const result = await hashInChild(file, 'xz');
    expect({ narHash: result.narHash, narSize: result.narSize }).toEqual(expected);
    expect(result.rssGrowth).toBeLessThan(expected.narSize / 3);
  });
});

describe('NAR decompression', () => {
  let path = '';
  let nar = '';

  beforeAll(async () => {
    [path] = (await nixBuild(
      `derivation { name = "sluice-nar-small"; salt = "${salt()}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "/usr/bin/head -c ${3 * MiB} /dev/urandom > $out" ]; }`,
    )) as [string];
    made.push(path);
    nar = await dump(path, join(work, 'small.nar'));
  });

  it('reads multi-block xz that nix copy writes with parallel-compression', async () => {
    const cache = await copyToFileCache(
      [path],
      'compression=xz&parallel-compression=true&compression-level=0',
    );
    const { stdout } = await execFileAsync('sh', ['-c', `xz --list --robot "${cache}"/nar/*.nar.xz`]);
    expect(Number(/^totals\t\d+\t(\d+)/m.exec(stdout)![1])).toBeGreaterThan(1); // blocks
    const [file] = (await execFileAsync('sh', ['-c', `ls "${cache}"/nar/*.nar.xz`])).stdout
      .trim()
      .split('\n');
    expect(await hashNar(createReadStream(file!), 'xz')).toEqual({
      narHash: Hash.parse((await nixNarDigest(path)).narHash),
      narSize: (await nixNarDigest(path)).narSize,
    });
    rmSync(cache, { recursive: true, force: true });
  });

  it('reads concatenated streams (xz and zstd), as a NAR compressed in parts would be', async () => {
    const data = readFileSync(nar);
    const half = Math.floor(data.length / 2);
    const expected = { narHash: Hash.of('sha256', data), narSize: data.length };
    for (const compression of ['xz', 'zstd'] as const) {
      const parts = await Promise.all(
        [data.subarray(0, half), data.subarray(half)].map((p) => compress(p, compression)),
      );
      // One chunk holding both streams: Node's own zstd decoder would drop the second frame here.
      expect(await hashNar(Readable.from([Buffer.concat(parts)]), compression)).toEqual(expected);
      expect(await narHasherDigest([Buffer.concat(parts)], compression)).toEqual(expected);
    }
  });

  it('reads zstd frames and skippable frames however the input is chunked', async () => {
    const pieces = [Buffer.from('sluice '), Buffer.alloc(0), Buffer.alloc(300_000, 7), randomBytes(70_000)];
    const skippable = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
    const frames = await Promise.all(pieces.map((p) => compress(p, 'zstd')));
    const file = Buffer.concat([frames[0]!, skippable, frames[1]!, frames[2]!, skippable, frames[3]!]);
    const whole = Buffer.concat(pieces);
    const expected = { narHash: Hash.of('sha256', whole), narSize: whole.length };
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: file.length - 1 }), { maxLength: 12 }),
        async (cuts) => {
          const bounds = [0, ...cuts.sort((a, b) => a - b), file.length];
          const chunks = bounds.slice(1).map((end, i) => file.subarray(bounds[i], end));
          expect(await hashNar(Readable.from(chunks), 'zstd')).toEqual(expected);
          expect(await narHasherDigest(chunks, 'zstd')).toEqual(expected);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('fails with a clear error on corrupt, truncated or unknown input', async () => {
    const xz = join(work, 'small.nar.xz');
    await compressFile(nar, 'xz', xz);
    const zst = await compressFile(nar, 'zstd', join(work, 'small.nar.zst'));
    const corrupt = (file: string) => {
      const bytes = readFileSync(file);
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
      return Readable.from([bytes]);
    };
    const truncated = (file: string) => {
      const bytes = readFileSync(file);
      return Readable.from([bytes.subarray(0, bytes.length - 100)]);
    };
    await expect(hashNar(corrupt(xz), 'xz')).rejects.toThrow(/xz decompression failed: .*corrupt/);
    await expect(hashNar(truncated(xz), 'xz')).rejects.toThrow(
      /xz decompression failed: .*(Unexpected end|truncated)/,
    );
    await expect(hashNar(Readable.from([Buffer.from('not xz at all')]), 'xz')).rejects.toThrow(
      /xz decompression failed: .*format not recognized/,
    );
    await expect(hashNar(corrupt(zst), 'zstd')).rejects.toThrow(/checksum/i);
    await expect(hashNar(truncated(zst), 'zstd')).rejects.toThrow(
      'zstd data ends in the middle of a frame (truncated)',
    );
    await expect(hashNar(Readable.from([Buffer.from('not zstd at all')]), 'zstd')).rejects.toThrow(
      'not zstd data: no frame magic number at byte 0',
    );
    const zstBytes = readFileSync(zst);
    await expect(
      hashNar(Readable.from([zstBytes, Buffer.from('junk after the frame')]), 'zstd'),
    ).rejects.toThrow(`not zstd data: no frame magic number at byte ${zstBytes.length}`);
    // The same failures from createNarHasher, as uploads meet them.
    const bytesOf = async (stream: Readable) => [Buffer.concat(await stream.toArray())];
    await expect(narHasherDigest(await bytesOf(corrupt(zst)), 'zstd')).rejects.toThrow(/checksum/i);
    await expect(narHasherDigest(await bytesOf(truncated(zst)), 'zstd')).rejects.toThrow(
      'zstd data ends in the middle of a frame (truncated)',
    );
    await expect(narHasherDigest([zstBytes, Buffer.from('junk after the frame')], 'zstd')).rejects.toThrow(
      `not zstd data: no frame magic number at byte ${zstBytes.length}`,
    );
    await expect(narHasherDigest(await bytesOf(corrupt(xz)), 'xz')).rejects.toThrow(
      /xz decompression failed: .*corrupt/,
    );
    await expect(narHasherDigest(await bytesOf(truncated(xz)), 'xz')).rejects.toThrow(
      /xz decompression failed: .*(Unexpected end|truncated)/,
    );
    expect(await narHasherDigest([readFileSync(nar)], 'none')).toEqual({
      narHash: Hash.of('sha256', readFileSync(nar)),
      narSize: statSync(nar).size,
    });
    expect(() => createNarHasher('bzip2')).toThrow("unsupported compression 'bzip2'");
    expect(() => createDecompressor('bzip2')).toThrow(CompressionError);
    expect(() => createDecompressor('bzip2')).toThrow(
      "unsupported compression 'bzip2' (supported: none, zstd, xz)",
    );
    expect(() => createCompressor('gzip')).toThrow("unsupported compression 'gzip'");
    expect(() => createCompressor('xz', { level: 12 })).toThrow('xz level must be 0-9, got 12');
    // A file that asks for a 384 MiB dictionary (xz -9 uses 64 MiB) is refused, not obeyed.
    const greedy = join(work, 'greedy.xz');
    await execFileAsync('sh', [
      '-c',
      `head -c 1000 "$1" | xz --lzma2=dict=300MiB,mf=hc3,mode=fast > "$2"`,
      'sh',
      nar,
      greedy,
    ]);
    await expect(hashNar(createReadStream(greedy), 'xz')).rejects.toThrow(
      /xz data needs more memory to decompress than the limit of 256 MiB/,
    );
    const unread = Readable.from([Buffer.from('x')]);
    await expect(hashNar(unread, 'lz4')).rejects.toThrow("unsupported compression 'lz4'");
    expect(unread.destroyed).toBe(true); // the caller's source is closed, not leaked
  });

  it('stops the xz process when the consumer gives up half way', async () => {
    const controller = new AbortController();
    const decompressor = createDecompressor('xz');
    let seen = 0;
    const consumer = pipeline(
      createReadStream(await compressFile(nar, 'xz', join(work, 'abort.nar.xz'))),
      decompressor,
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          seen += chunk.length;
          if (seen > 1024 * 1024) controller.abort();
        }
      },
      { signal: controller.signal },
    );
    await expect(consumer).rejects.toThrow(/aborted/);
    expect(decompressor.destroyed).toBe(true);
    expect(seen).toBeLessThan(statSync(nar).size);
    // The xz child is killed, not left running: none of this process's children is xz any more.
    const xzChildren = async () =>
      (
        await execFileAsync('ps', ['-o', 'args=', '--ppid', String(process.pid)]).catch(() => ({
          stdout: '',
        }))
      ).stdout
        .split('\n')
        .filter((args) => args.startsWith('xz --decompress'));
    for (let i = 0; i < 50 && (await xzChildren()).length > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await xzChildren()).toEqual([]);
  });
});

describe('NARs we compress, in a cache we write and sign', () => {
  it.each(['zstd', 'xz', 'none'] as const)(
    '%s: nix-store -r substitutes them into a fresh store',
    async (compression) => {
      const [top] = await nixBuild(randomChainExpr(2, 2048));
      const closure = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
      made.push(...[...closure].reverse());
      const key = generateSecretKey('sluice-nar-test-1');
      const cache = mkdtempSync(join(tmpdir(), 'sluice-our-cache-'));
      mkdirSync(join(cache, 'nar'));
      writeFileSync(join(cache, 'nix-cache-info'), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
      for (const info of await pathInfo(closure)) {
        const nar = await dump(info.path, join(work, 'push.nar'));
        const upload = join(cache, 'upload.tmp');
        const digest = await digestNarFile(
          createReadStream(nar).pipe(createCompressor(compression)),
          compression,
          createWriteStream(upload),
        );
        expect(digest.narHash.toSRI()).toBe(info.narHash);
        expect(digest.narSize).toBe(info.narSize);
        const url = `nar/${digest.fileHash.nix32}.nar${NAR_EXTENSIONS[compression]}`;
        renameSync(upload, join(cache, url));
        const narInfo = {
          storePath: info.path,
          url,
          compression,
          fileHash: digest.fileHash,
          fileSize: digest.fileSize,
          narHash: digest.narHash,
          narSize: digest.narSize,
          references: info.references.map((r) => StorePath.parse(r).baseName),
          sigs: [] as string[],
          extra: [],
        };
        narInfo.sigs = [signFingerprint(narInfoFingerprint(narInfo), key)];
        writeFileSync(
          join(cache, `${StorePath.parse(info.path).hashPart}.narinfo`),
          serializeNarInfo(narInfo),
        );
      }
      try {
        const realised = await substituteIntoFreshStore(cache, key.publicKey.text, top!, (store) => {
          const substituted = join(store, top!, 'data');
          expect(readFileSync(substituted).equals(readFileSync(join(top!, 'data')))).toBe(true);
        });
        expect(realised).toBe(top);
      } finally {
        rmSync(cache, { recursive: true, force: true });
      }
    },
  );
});
