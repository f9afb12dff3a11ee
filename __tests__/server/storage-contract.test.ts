/**
 * One contract per storage interface, run against every implementation on real parts: the
 * BlobStore on files and on S3 (Ceph RGW), the MetadataStore on SQLite and on PostgreSQL.
 * Put-if-absent, atomic visibility, ranges, slice-filtered lookups.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import type { BlobStore } from '../../src/server/storage/blob-store.js';
import type { MetadataStore } from '../../src/server/storage/metadata-store.js';
import { blobBackends, metadataBackends, type BlobBackend } from '../support/backends.js';

/** Everything a BlobReader writes, copied as it arrives (its buffers are reused). */
async function read(store: BlobStore, key: string, range?: { start: number; end: number }) {
  const reader = await store.open(key, range);
  if (!reader) return null;
  const chunks: Buffer[] = [];
  let reported = 0;
  const sink = new Writable({
    // Like a socket: the bytes are taken (copied here) on a later turn, and only then the
    // callback runs, so a buffer reused before its callback would show as wrong bytes.
    write: (chunk: Buffer, _encoding, done) =>
      setImmediate(() => {
        chunks.push(Buffer.from(chunk));
        done();
      }),
  });
  await reader.writeTo(sink, (bytes) => (reported += bytes));
  const bytes = Buffer.concat(chunks);
  expect(reported).toBe(bytes.length);
  // What a download's Content-Length is taken from.
  expect(reader.length).toBe(bytes.length);
  return bytes;
}

/** A body that yields `bytes` in chunks of one reused buffer, as the upload verification does. */
async function* reusedChunks(bytes: Buffer, chunkSize = 256 * 1024): AsyncGenerator<Buffer> {
  const buffer = Buffer.alloc(chunkSize);
  for (let offset = 0; offset < bytes.length; offset += chunkSize) {
    const n = bytes.copy(buffer, 0, offset, offset + chunkSize);
    yield buffer.subarray(0, n);
    buffer.fill(0xee);
  }
}

/** A body that yields `prefix`, then fails as a failed check (or a dropped connection) does. */
async function* failingAfter(prefix: Buffer, message: string): AsyncGenerator<Buffer> {
  yield* reusedChunks(prefix);
  throw new Error(message);
}

describe.each(blobBackends)('BlobStore on %s', (_name, open) => {
  let backend: BlobBackend;
  let store: BlobStore;
  beforeEach(async () => {
    backend = await open();
    store = backend.store;
  });
  afterEach(() => backend.close());

  it('stores once, reads whole or by range, heads and deletes', async () => {
    expect(await store.put('abc.nar', Readable.from([Buffer.from('hello '), Buffer.from('world')]))).toBe(
      'created',
    );
    expect(await store.put('abc.nar', Readable.from([Buffer.from('other')]))).toBe('exists');
    expect((await read(store, 'abc.nar'))?.toString()).toBe('hello world');
    expect((await read(store, 'abc.nar', { start: 6, end: 10 }))?.toString()).toBe('world');
    expect(await store.head('abc.nar')).toEqual({ size: 11 });
    await store.delete('abc.nar');
    expect([await store.head('abc.nar'), await read(store, 'abc.nar')]).toEqual([null, null]);
    expect(await backend.leftovers()).toEqual([]);
  });

  it('stores a body of several parts from reused chunk buffers, byte for byte, and ranges across them', async () => {
    const bytes = randomBytes(12 * 1024 ** 2 + 123);
    expect(await store.put('big.nar', reusedChunks(bytes))).toBe('created');
    expect(await store.head('big.nar')).toEqual({ size: bytes.length });
    expect((await read(store, 'big.nar'))!.equals(bytes)).toBe(true);
    for (const [start, end] of [
      [0, 256 * 1024],
      [256 * 1024 - 1, 5 * 1024 ** 2 + 5],
      [bytes.length - 1, bytes.length - 1],
    ] as const) {
      expect((await read(store, 'big.nar', { start, end }))!.equals(bytes.subarray(start, end + 1))).toBe(
        true,
      );
    }
  });

  it('reads an existing key body to its end without storing it, so its checks still run', async () => {
    await store.put('abc.nar', Readable.from([Buffer.from('first')]));
    let ended = false;
    async function* body() {
      yield Buffer.from('second');
      ended = true;
    }
    expect(await store.put('abc.nar', body())).toBe('exists');
    expect(ended).toBe(true);
    await expect(store.put('abc.nar', failingAfter(Buffer.from('x'), 'check failed'))).rejects.toThrow(
      'check failed',
    );
    expect((await read(store, 'abc.nar'))?.toString()).toBe('first');
  });

  it('two puts of one small key at once: both succeed, exactly one creates', async () => {
    const bytes = randomBytes(1024);
    const outcomes = await Promise.all([
      store.put('small.nar', reusedChunks(bytes)),
      store.put('small.nar', reusedChunks(bytes)),
    ]);
    expect(outcomes.sort()).toEqual(['created', 'exists']);
    expect((await read(store, 'small.nar'))!.equals(bytes)).toBe(true);
  });

  it('two puts of one key of several parts at once: both succeed, the object is whole', async () => {
    const bytes = randomBytes(7 * 1024 ** 2);
    const outcomes = await Promise.all([
      store.put('same.nar', reusedChunks(bytes)),
      store.put('same.nar', reusedChunks(bytes)),
    ]);
    expect(outcomes).toContain('created');
    expect((await read(store, 'same.nar'))!.equals(bytes)).toBe(true);
    expect(await backend.leftovers()).toEqual(['same.nar'].map((key) => expect.stringContaining(key)));
  });

  it('a destination that closes midway fails the read instead of leaving it waiting', async () => {
    await store.put('big.nar', reusedChunks(randomBytes(4 * 1024 ** 2)));
    let writes = 0;
    const sink = new Writable({
      write: (_chunk, _encoding, done) => {
        // The second chunk never gets through: the peer goes away instead.
        if (++writes === 2) sink.destroy();
        else done();
      },
    });
    await expect((await store.open('big.nar'))!.writeTo(sink)).rejects.toThrow(
      'the destination closed before taking all the bytes',
    );
    expect(writes).toBe(2);
  });

  it.each([
    ['within one part', 100 * 1024],
    ['after two parts were sent', 11 * 1024 ** 2],
  ])(
    'a body that fails %s leaves nothing, not even a temp file or an unfinished upload',
    async (_what, size) => {
      await expect(store.put('abc.nar', failingAfter(randomBytes(size), 'check failed'))).rejects.toThrow(
        'check failed',
      );
      expect(await store.head('abc.nar')).toBeNull();
      expect(await backend.leftovers()).toEqual([]);
    },
  );

  it('refuses keys that are not plain file names', async () => {
    for (const key of ['../x', 'a/b', '.hidden', 'A.nar', '..']) {
      await expect(store.head(key)).rejects.toThrow(`invalid blob key '${key}'`);
    }
  });
});

describe.each(metadataBackends)('MetadataStore on %s', (_name, open) => {
  let meta: MetadataStore;
  beforeEach(async () => {
    meta = await open();
  });
  afterEach(() => meta.close());

  const facts = {
    key: 'k.nar',
    compression: 'none' as const,
    fileHash: 'sha256:f',
    fileSize: 3,
    narHash: 'sha256:x',
    narSize: 3,
  };
  const record = (slice: string, createdAt: number, hashPart = 'h'.repeat(32)) => ({
    slice,
    hashPart,
    storePath: `/nix/store/${hashPart}-x`,
    narKey: 'k.nar',
    narinfo: `StorePath: in ${slice}\n`,
    createdAt: new Date(createdAt),
  });
  const audit = (slice: string, time = new Date()) => ({
    time,
    slice,
    storePath: '/nix/store/p',
    narSize: 3,
    fileSize: 3,
  });

  it('keeps an upload recorded without a FileHash without one', async () => {
    const { fileHash: _none, ...withoutFileHash } = { ...facts, key: 'n.nar' };
    await meta.recordUpload('a', withoutFileHash);
    await meta.recordUpload('a', { ...facts, key: 'n.nar' });
    expect(await meta.uploadedNar('a', 'n.nar')).toEqual(withoutFileHash);
    await meta.recordUpload('b', { ...facts, key: 'n.nar' });
    expect(await meta.uploadedNar('b', 'n.nar')).toEqual({ ...facts, key: 'n.nar' });
  });

  it('answers lookups only from the slices the filter admits', async () => {
    await meta.recordUpload('a', facts);
    await meta.recordUpload('a', facts);
    expect(await meta.uploadedNar('a', 'k.nar')).toEqual(facts);
    expect(await meta.uploadedNar('b', 'k.nar')).toBeNull();
    expect(await meta.putNarInfo(record('b', 2), audit('b', new Date(2)))).toBe('created');
    expect(await meta.putNarInfo(record('a', 1), audit('a', new Date(3)))).toBe('created');
    expect(await meta.putNarInfo(record('a', 3), audit('a'))).toBe('exists');
    // Every readable row, with its slice's binding (none here); which one answers is union-read's choice.
    const found = async (readable: (slice: string) => boolean, hashParts = ['h'.repeat(32)]) =>
      (await meta.findNarInfos(hashParts, readable))
        .map((row) => [row.hashPart, row.slice, row.narinfo, row.owner])
        .sort();
    expect(await found((s) => s === 'b')).toEqual([['h'.repeat(32), 'b', 'StorePath: in b\n', null]]);
    expect(await found(() => true, ['h'.repeat(32), 'x'.repeat(32)])).toEqual([
      ['h'.repeat(32), 'a', 'StorePath: in a\n', null],
      ['h'.repeat(32), 'b', 'StorePath: in b\n', null],
    ]);
    expect(await found((s) => s === 'c')).toEqual([]);
    expect(await meta.findNarInfos([], () => true)).toEqual([]);
    expect((await meta.findNarInfos(['h'.repeat(32)], (s) => s === 'a'))[0]).toEqual({
      ...record('a', 1),
      owner: null,
    });
    await meta.bindSlice('b', { issuer: 'github', repositoryId: '7', repositoryOwnerId: '8' });
    const owners = (await meta.findNarInfos(['h'.repeat(32)], () => true)).map((row) => row.owner);
    expect(owners).toContainEqual({ issuer: 'github', repositoryId: '7', repositoryOwnerId: '8' });
    // The filter sees the binding: a reader bound to other ids does not.
    expect(await found((slice) => slice === 'b', ['h'.repeat(32)]).then((rows) => rows.length)).toBe(1);
    expect(
      (
        await meta.findNarInfos(
          ['h'.repeat(32)],
          (slice, owner) => slice === 'b' && owner?.repositoryId === '9',
        )
      ).length,
    ).toBe(0);
    expect(
      await meta.isNarReadable('k.nar', (slice, owner) => slice === 'b' && owner?.repositoryId === '7'),
    ).toBe(true);
    expect(await meta.isNarReadable('k.nar', (s) => s === 'c')).toBe(false);
    expect(await meta.isNarReadable('k.nar', (s) => s === 'b')).toBe(true);
    expect((await meta.listAudit({})).map((e) => e.slice)).toEqual(['b', 'a']);
    expect((await meta.listAudit({ slice: 'a' })).length).toBe(1);
    expect((await meta.listAudit({ since: new Date(3) })).map((e) => e.slice)).toEqual(['a']);
    expect((await meta.listAudit({ limit: 1 })).map((e) => e.slice)).toEqual(['b']);
  });

  it('keeps the writer identity and sizes of each audit row', async () => {
    const entry = {
      ...audit('s', new Date(1_700_000_000_123)),
      narSize: 5 * 1024 ** 3,
      fileSize: 4 * 1024 ** 3,
      repository: 'o/r',
      repositoryId: '1',
      ref: 'refs/heads/main',
      workflow: 'ci',
      runId: '7',
      sha: 'abc',
    };
    await meta.putNarInfo(record('s', 1), entry);
    expect(await meta.listAudit({ slice: 's' })).toEqual([entry]);
  });

  it('many writers of one narinfo at once: one is created, one audit row', async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, (_, i) => meta.putNarInfo(record('s', i), audit('s'))),
    );
    expect(outcomes.filter((outcome) => outcome === 'created')).toHaveLength(1);
    expect(await meta.listAudit({ slice: 's' })).toHaveLength(1);
  });

  it('binds a slice to the first owner', async () => {
    const first = { issuer: 'github', repositoryId: '1', repositoryOwnerId: '9' };
    expect(await meta.sliceOwner('s')).toBeNull();
    expect(await meta.bindSlice('s', first)).toEqual(first);
    expect(await meta.bindSlice('s', { issuer: 'other', repositoryId: '2', repositoryOwnerId: '9' })).toEqual(
      first,
    );
    expect(await meta.sliceOwner('s')).toEqual(first);
    // Many at once: only the bound ones.
    expect(await meta.sliceOwners(['s', 'unbound'])).toEqual(new Map([['s', first]]));
    expect(await meta.sliceOwners([])).toEqual(new Map());
  });

  it('takes an ID token once until it expires, and drops it then', async () => {
    const t = Date.UTC(2026, 0, 1);
    expect(await meta.useIdTokenOnce('github:jti:a', new Date(t + 60_000), new Date(t))).toBe(true);
    expect(await meta.useIdTokenOnce('github:jti:b', new Date(t + 120_000), new Date(t))).toBe(true);
    expect(await meta.useIdTokenOnce('github:jti:a', new Date(t + 60_000), new Date(t + 59_999))).toBe(false);
    // Past its expiry the record is dropped: the same key is taken again.
    expect(await meta.useIdTokenOnce('github:jti:a', new Date(t + 180_000), new Date(t + 60_000))).toBe(true);
    expect(await meta.useIdTokenOnce('github:jti:b', new Date(t + 120_000), new Date(t + 60_000))).toBe(
      false,
    );
  });

  it('many replicas taking one ID token at once: exactly one gets it', async () => {
    const t = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () => meta.useIdTokenOnce('github:jti:x', new Date(t + 60_000), new Date(t))),
    );
    expect(outcomes.filter(Boolean)).toHaveLength(1);
  });

  it('records, lists, touches and revokes read tokens', async () => {
    const t = Date.UTC(2026, 0, 1);
    const token = {
      id: 'id-1',
      name: 'laptop',
      read: ['acme/*', 'oss/tools'],
      createdAt: new Date(t),
      expiresAt: new Date(t + 86_400_000),
      lastUsedAt: null,
      revokedAt: null,
    };
    await meta.addReadToken(token);
    expect(await meta.touchReadToken('id-1', new Date(t + 5000))).toEqual({ revoked: false });
    expect(await meta.touchReadToken('id-1', new Date(t + 1000))).toEqual({ revoked: false });
    expect(await meta.touchReadToken('nope', new Date(t))).toBeNull();
    expect(await meta.revokeReadToken('id-1', new Date(t + 6000))).toBe(true);
    expect(await meta.revokeReadToken('id-1', new Date(t + 9000))).toBe(true);
    expect(await meta.revokeReadToken('nope', new Date(t))).toBe(false);
    expect(await meta.touchReadToken('id-1', new Date(t + 7000))).toEqual({ revoked: true });
    expect(await meta.listReadTokens()).toEqual([
      { ...token, lastUsedAt: new Date(t + 7000), revokedAt: new Date(t + 6000) },
    ]);
  });

  it('lists the hash parts per slice with its binding, and from a cursor only what came after it', async () => {
    const hash = (c: string) => c.repeat(32);
    const byslice = (answer: Awaited<ReturnType<MetadataStore['narInfoHashParts']>>) =>
      Object.fromEntries(
        answer.slices.map(({ slice, owner, hashParts }) => [
          slice,
          { owner, hashParts: (hashParts.match(/.{32}/g) ?? []).sort() },
        ]),
      );
    const empty = await meta.narInfoHashParts(null);
    expect(empty.slices).toEqual([]);
    expect(empty.cursor).toMatch(/^\d+$/);
    await meta.bindSlice('b', { issuer: 'github', repositoryId: '7', repositoryOwnerId: '8' });
    await meta.putNarInfo(record('a', 1, hash('1')), audit('a'));
    await meta.putNarInfo(record('a', 2, hash('2')), audit('a'));
    await meta.putNarInfo(record('b', 3, hash('1')), audit('b'));
    const all = await meta.narInfoHashParts(null);
    expect(byslice(all)).toEqual({
      a: { owner: null, hashParts: [hash('1'), hash('2')] },
      b: { owner: { issuer: 'github', repositoryId: '7', repositoryOwnerId: '8' }, hashParts: [hash('1')] },
    });
    // From a cursor: whatever came after it, and possibly rows already listed (PostgreSQL's cursor
    // is the cluster's oldest running transaction, which another session may hold back), nothing else.
    const only = (answer: Awaited<ReturnType<MetadataStore['narInfoHashParts']>>, known: string[]) =>
      expect(
        answer.slices
          .flatMap(({ slice, hashParts }) => (hashParts.match(/.{32}/g) ?? []).map((h) => `${slice} ${h}`))
          .filter((row) => !known.includes(row)),
      ).toEqual([]);
    const listed = [`a ${hash('1')}`, `a ${hash('2')}`, `b ${hash('1')}`];
    only(await meta.narInfoHashParts(all.cursor), listed);
    await meta.putNarInfo(record('b', 4, hash('3')), audit('b'));
    expect(await meta.putNarInfo(record('a', 5, hash('1')), audit('a'))).toBe('exists');
    const later = await meta.narInfoHashParts(all.cursor);
    expect(byslice(later).b).toEqual({
      owner: { issuer: 'github', repositoryId: '7', repositoryOwnerId: '8' },
      hashParts: expect.arrayContaining([hash('3')]),
    });
    only(later, [...listed, `b ${hash('3')}`]);
    only(await meta.narInfoHashParts(later.cursor), [...listed, `b ${hash('3')}`]);
    expect(byslice(await meta.narInfoHashParts(null)).b?.hashParts).toEqual([hash('1'), hash('3')]);
  });

  it("lists a slice's narinfos by last use, newest first, up to a limit", async () => {
    const hash = (c: string) => c.repeat(32);
    await meta.putNarInfo(record('s', 1_000, hash('1')), audit('s'));
    await meta.putNarInfo(record('s', 2_000, hash('2')), audit('s'));
    await meta.putNarInfo(record('s', 3_000, hash('3')), audit('s'));
    await meta.putNarInfo(record('t', 9_000, hash('4')), audit('t'));
    expect(await meta.recentNarInfos('s', 10)).toEqual([
      { hashPart: hash('3'), usedAt: 3_000 },
      { hashPart: hash('2'), usedAt: 2_000 },
      { hashPart: hash('1'), usedAt: 1_000 },
    ]);
    // A read counts as a use: the oldest path, read last, comes first.
    expect(await meta.touchNarInfos([{ slice: 's', hashPart: hash('1') }], new Date(5_000))).toBe(1);
    expect(await meta.recentNarInfos('s', 2)).toEqual([
      { hashPart: hash('1'), usedAt: 5_000 },
      { hashPart: hash('3'), usedAt: 3_000 },
    ]);
    expect(await meta.recentNarInfos('none', 2)).toEqual([]);
  });

  it('keeps the key a narinfo was signed with when stored', async () => {
    await meta.putNarInfo({ ...record('s', 1), signedBy: 'cache-1:AAAA' }, audit('s'));
    await meta.putNarInfo({ ...record('t', 2) }, audit('t'));
    const rows = await meta.findNarInfos(['h'.repeat(32)], () => true);
    expect(rows.map((row) => [row.slice, row.signedBy]).sort()).toEqual([
      ['s', 'cache-1:AAAA'],
      ['t', undefined],
    ]);
  });
});
