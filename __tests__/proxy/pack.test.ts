/**
 * The pack format on its own, with real store paths: written from the store, read back and checked
 * (from the extracted files, and streamed out of a tar.zst as @actions/cache writes it, while it
 * grows), a corrupted NAR or index refused; and the planner's choice of paths.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { createDecompressor } from '../../src/nix/nar.js';
import { Hash } from '../../src/nix/hash.js';
import {
  PACK_CACHE_PATHS,
  PACK_DIR,
  PACK_INDEX,
  PACK_NARS,
  parseIndex,
  PackFormatError,
} from '../../src/proxy/pack/format.js';
import { planPack } from '../../src/proxy/pack/planner.js';
import { PackReader } from '../../src/proxy/pack/reader.js';
import { streamRestore } from '../../src/proxy/pack/stream-restore.js';
import { writePack } from '../../src/proxy/pack/writer.js';
import { ByteReader, readTar, TarError } from '../../src/proxy/pack/tar-stream.js';
import { LocalStore, type PathInfo } from '../../src/proxy/push/local-store.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';

const execFileAsync = promisify(execFile);
let infos: PathInfo[];
let root: string;

beforeAll(async () => {
  const [top] = await nixBuild(randomChainExpr(3, 300_000));
  infos = await new LocalStore().closureInfo([top!]);
  // References first, as the planner orders them.
  infos = planPack({
    infos,
    lastUsed: new Map(),
    inRestoredPack: new Set(),
    excluded: () => undefined,
    maxBytes: Infinity,
  }).paths;
  root = mkdtempSync(join(tmpdir(), 'sluice-pack-'));
  await writePack(root, infos);
}, 120_000);

async function narOf(reader: PackReader, i: number): Promise<Buffer> {
  const entry = reader.index.entries[i]!;
  await reader.verified(entry);
  const decompressor = createDecompressor('zstd');
  const nar = buffer(decompressor);
  await reader.send(entry, decompressor);
  decompressor.end();
  return nar;
}

describe('a pack written from the store', () => {
  it('reads back: every NAR passes its check and is the bytes nix-store --dump writes', async () => {
    const reader = await PackReader.open(root);
    expect(reader.index.entries.map((e) => e.path)).toEqual(infos.map((i) => i.path));
    await reader.verify();
    expect(reader.corrupt).toBeUndefined();
    const { stdout } = await execFileAsync('nix-store', ['--dump', infos[1]!.path], {
      encoding: 'buffer',
      maxBuffer: 1 << 26,
    });
    expect((await narOf(reader, 1)).equals(stdout)).toBe(true);
  });

  it('leaves out paths deleted from the store after the plan: the rest is intact and verifies', async () => {
    const [gone] = await nixBuild(randomChainExpr(2, 200_000));
    const goneInfos = await new LocalStore().closureInfo([gone!]);
    await execFileAsync('nix-store', ['--delete', ...goneInfos.map((i) => i.path)]);
    const mixed = mkdtempSync(join(tmpdir(), 'sluice-pack-vanished-'));
    // Deleted paths before, between and after the kept ones: what they began to write is overwritten or cut.
    const plan = [goneInfos[0]!, infos[0]!, goneInfos[1]!, ...infos.slice(1), ...goneInfos.slice(2)];
    const written = await writePack(mixed, plan);
    expect(written.vanished.sort()).toEqual(goneInfos.map((i) => i.path).sort());
    expect(written.index.entries.map((e) => e.path)).toEqual(infos.map((i) => i.path));
    expect(readFileSync(join(mixed, PACK_CACHE_PATHS[1]!)).length).toBe(written.bytes);
    const reader = await PackReader.open(mixed);
    await reader.verify();
    expect(reader.corrupt).toBeUndefined();
    const { stdout } = await execFileAsync('nix-store', ['--dump', infos[2]!.path], {
      encoding: 'buffer',
      maxBuffer: 1 << 26,
    });
    expect((await narOf(reader, 2)).equals(stdout)).toBe(true);
  });

  it('a NAR that does not match its index entry is never handed out, nor anything after it', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'sluice-pack-bad-'));
    mkdirSync(join(copy, 'sluice-pack'));
    const index = JSON.parse(readFileSync(join(root, PACK_CACHE_PATHS[0]!), 'utf8')) as {
      entries: { narHash: string }[];
    };
    // Entry 1 claims another NarHash: the bytes are intact zstd, only the check can tell.
    index.entries[1]!.narHash = new Hash('sha256', Buffer.alloc(32, 7)).toString();
    writeFileSync(join(copy, PACK_CACHE_PATHS[0]!), JSON.stringify(index));
    writeFileSync(join(copy, PACK_CACHE_PATHS[1]!), readFileSync(join(root, PACK_CACHE_PATHS[1]!)));
    const reader = await PackReader.open(copy);
    await reader.verify();
    expect(reader.corrupt).toMatch(/does not match its index entry/);
    await expect(reader.verified(reader.index.entries[0]!)).resolves.toBeUndefined();
    await expect(reader.verified(reader.index.entries[1]!)).rejects.toThrow(/does not match/);
    await expect(reader.verified(reader.index.entries[2]!)).rejects.toThrow();
    expect(reader.entryForHashPart(reader.index.entries[0]!.path.slice(11, 43))).toBeUndefined();
  });

  it('streams out of a growing tar.zst: the index comes first, the NARs as their bytes arrive', async () => {
    const work = mkdtempSync(join(tmpdir(), 'sluice-pack-stream-'));
    const archive = join(work, 'archive.tzst');
    await execFileAsync('tar', ['--zstd', '-cf', archive, '-C', root, ...PACK_CACHE_PATHS]);
    const bytes = readFileSync(archive);
    const download = join(work, 'tmp', 'some-uuid');
    mkdirSync(download, { recursive: true });
    const cut = Math.floor(bytes.length / 2);
    writeFileSync(join(download, 'cache.tzst'), bytes.subarray(0, cut));
    let finished = false;
    const streamed = await streamRestore(
      join(work, 'tmp'),
      () => finished,
      join(work, 'out'),
      () => undefined,
    );
    expect(streamed).toBeDefined();
    const reader = streamed!.reader;
    expect(reader.index.entries).toHaveLength(infos.length);
    // The rest lands; the download ends.
    appendFileSync(join(download, 'cache.tzst'), bytes.subarray(cut));
    finished = true;
    await streamed!.finished;
    expect(reader.corrupt).toBeUndefined();
    const { stdout } = await execFileAsync('nix-store', ['--dump', infos[2]!.path], {
      encoding: 'buffer',
      maxBuffer: 1 << 26,
    });
    expect((await narOf(reader, 2)).equals(stdout)).toBe(true);
  });

  it('a download that breaks off after the index marks the pack unusable from there', async () => {
    const work = mkdtempSync(join(tmpdir(), 'sluice-pack-short-'));
    const archive = join(work, 'archive.tzst');
    await execFileAsync('tar', ['--zstd', '-cf', archive, '-C', root, ...PACK_CACHE_PATHS]);
    const bytes = readFileSync(archive);
    mkdirSync(join(work, 'tmp', 'x'), { recursive: true });
    writeFileSync(join(work, 'tmp', 'x', 'cache.tzst'), bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    // The index arrives while the download still runs; then it ends short.
    let finished = false;
    const streamed = await streamRestore(
      join(work, 'tmp'),
      () => finished,
      join(work, 'out'),
      () => undefined,
    );
    expect(streamed).toBeDefined();
    finished = true;
    await streamed!.finished;
    expect(streamed!.reader.corrupt).toBeDefined();
    await expect(streamed!.reader.verified(streamed!.reader.index.entries.at(-1)!)).rejects.toThrow();
  });
  it('a pack whose NARs would not fit on the disk is refused before a byte of them is written', async () => {
    // A few bytes of index can claim a petabyte: zstd packs runs of zeros a million to one.
    const work = mkdtempSync(join(tmpdir(), 'sluice-pack-huge-'));
    cpSync(root, join(work, 'pack'), { recursive: true });
    const indexFile = join(work, 'pack', PACK_DIR, PACK_INDEX);
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { entries: { size: number }[] };
    index.entries.at(-1)!.size = 2 ** 50;
    writeFileSync(indexFile, JSON.stringify(index));
    const archive = join(work, 'archive.tzst');
    await execFileAsync('tar', ['--zstd', '-cf', archive, '-C', join(work, 'pack'), ...PACK_CACHE_PATHS]);
    mkdirSync(join(work, 'tmp', 'x'), { recursive: true });
    copyFileSync(archive, join(work, 'tmp', 'x', 'cache.tzst'));
    const streamed = await streamRestore(
      join(work, 'tmp'),
      () => true,
      join(work, 'out'),
      () => undefined,
    );
    expect(streamed).toBeDefined();
    await streamed!.finished;
    expect(streamed!.reader.corrupt).toMatch(
      /^the pack's NARs \(1048576\.0 GiB\) do not fit in the [\d.]+ GiB free on the disk \(1\.0 GiB kept for the job\): not restored$/,
    );
    expect(existsSync(join(work, 'out', PACK_DIR, PACK_NARS))).toBe(false);
    await expect(streamed!.reader.verified(streamed!.reader.index.entries[0]!)).rejects.toThrow(/do not fit/);
  });
});

describe('parseIndex', () => {
  const entry = (offset: number, path = `/nix/store/${'a'.repeat(32)}-x`) => ({
    path,
    narHash: `sha256:${'0'.repeat(52)}`,
    narSize: 8,
    references: [],
    offset,
    size: 10,
  });
  const index = (entries: unknown[]) => JSON.stringify({ format: 'sluice-pack', version: 1, entries });
  it('accepts contiguous entries and refuses gaps, duplicates and foreign files, naming the problem', () => {
    expect(parseIndex(index([entry(0), entry(10, `/nix/store/${'b'.repeat(32)}-y`)])).entries).toHaveLength(
      2,
    );
    expect(() => parseIndex(index([entry(0), entry(11, `/nix/store/${'b'.repeat(32)}-y`)]))).toThrow(
      /entries\[1\]\.offset is 11, expected 10/,
    );
    expect(() => parseIndex(index([entry(0), entry(10)]))).toThrow(/in the pack twice/);
    expect(() => parseIndex('{"format":"other"}')).toThrow(PackFormatError);
    expect(() => parseIndex(index([{ ...entry(0), references: ['../etc'] }]))).toThrow(/references\[0\]/);
  });

  it("quotes a hostile index's own text cut short: errors go to the log, the warnings and the summary", () => {
    const huge = 'x'.repeat(4 * 1024 * 1024);
    const messageOf = (text: string): string => {
      try {
        parseIndex(text);
      } catch (e) {
        expect(e).toBeInstanceOf(PackFormatError);
        return (e as Error).message;
      }
      throw new Error('parsed');
    };
    const messages = [
      messageOf(JSON.stringify({ format: 'sluice-pack', version: huge, entries: [] })),
      messageOf(index([{ ...entry(0), path: `/nix/store/${huge}` }])),
      messageOf(index([{ ...entry(0), narHash: `sha256:${huge}` }])),
      messageOf(index([{ ...entry(0), references: [huge] }])),
    ];
    for (const message of messages) expect(message.length).toBeLessThan(400);
    expect(messages[0]).toMatch(/^pack format version "x{199}… \(4194306 characters\) is not 1$/);
  });
});

/** A tar header block of `type` whose size field holds `size` (octal, or GNU base-256 when a Buffer). */
function tarHeader(name: string, type: string, size: number | Buffer): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 'utf8');
  block.write('0000644\0', 100, 'latin1');
  if (typeof size === 'number') block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  else size.copy(block, 124);
  block.write(type, 156, 'latin1');
  block.write('ustar  \0', 257, 'latin1');
  block.fill(32, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/** `head`, then up to `zeros` zero bytes in 1 MiB chunks; `pulled` counts what the reader took. */
function hostileTar(head: Buffer, zeros: number) {
  const counter = { pulled: 0 };
  async function* chunks(): AsyncGenerator<Buffer> {
    counter.pulled += head.length;
    yield head;
    for (let left = zeros; left > 0; left -= 1 << 20) {
      const chunk = Buffer.alloc(Math.min(left, 1 << 20));
      counter.pulled += chunk.length;
      yield chunk;
    }
  }
  return { reader: new ByteReader(chunks()), counter };
}

describe('readTar on a hostile archive', () => {
  it.each([
    ['L', /a long name of 67108864 bytes/],
    ['x', /a pax header of 67108864 bytes/],
  ])('refuses a %s header that claims 64 MiB before holding it in memory', async (type, message) => {
    const size = 64 * 1024 * 1024;
    const { reader, counter } = hostileTar(tarHeader('././@LongLink', type, size), size);
    const files: string[] = [];
    await expect(readTar(reader, async (file) => void files.push(file.name))).rejects.toThrow(message);
    expect(counter.pulled).toBeLessThanOrEqual(2 << 20);
    expect(files).toEqual([]);
  });

  it('refuses a base-256 size beyond what a number holds exactly', async () => {
    const field = Buffer.alloc(12);
    field[0] = 0x80;
    field.writeBigUInt64BE(2n ** 60n, 4);
    const { reader } = hostileTar(tarHeader('sluice-pack/nars.zst', '0', field), 0);
    await expect(readTar(reader, async () => undefined)).rejects.toThrow(TarError);
    await expect(
      readTar(hostileTar(tarHeader('x', '0', field), 0).reader, async () => undefined),
    ).rejects.toThrow(/base-256 size field is negative or too large/);
  });
});

describe('planPack', () => {
  const info = (name: string, narSize: number, references: string[] = []): PathInfo => ({
    path: `/nix/store/${name.padEnd(32, name)}-${name}`,
    narHash: new Hash('sha256', Buffer.alloc(32)),
    narSize,
    references: references.map((r) => `/nix/store/${r.padEnd(32, r)}-${r}`),
  });
  const a = info('a', 100);
  const b = info('b', 100, ['a']);
  const c = info('c', 100, ['b']);
  const d = info('d', 100);

  it('drops the least recently used first, never a reference before its referrers', () => {
    // c was used long ago (so were b and a, through it); d was built just now.
    const plan = planPack({
      infos: [c, a, d, b],
      lastUsed: new Map([
        [c.path, 1],
        [d.path, 100],
      ]),
      inRestoredPack: new Set([a.path, b.path, c.path]),
      excluded: () => undefined,
      maxBytes: 300,
    });
    expect(plan.paths.map((p) => p.path)).toEqual([a.path, b.path, d.path]);
    expect(plan.dropped).toBe(1);
    expect(plan.added).toBe(1);
  });

  it('leaves out filtered and upstream paths, and adds nothing when all is from the restored pack', () => {
    const plan = planPack({
      infos: [a, b, d],
      lastUsed: new Map(),
      inRestoredPack: new Set([a.path, b.path]),
      excluded: (p) => (p === d.path ? 'upstream' : undefined),
      maxBytes: 1 << 30,
    });
    expect(plan.upstream).toBe(1);
    expect(plan.added).toBe(0);
  });
});
