/**
 * Reads a pack out of the archive @actions/cache is still downloading: decompress, walk the tar,
 * and hand over a reader as soon as the index has arrived; the NARs follow in the background,
 * each written to the pack's file and checked as it passes. Undefined when the archive never
 * showed up or broke before its index (the caller then reads what @actions/cache extracted).
 */
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { mkdir, statfs } from 'node:fs/promises';
import { createDecompressor } from '../../nix/nar.js';
import { dataSize, PACK_DIR, PACK_INDEX, PACK_NARS, parseIndex } from './format.js';
import { PackReader } from './reader.js';
import { ByteReader, readTar } from './tar-stream.js';
import { tailArchive } from './tail.js';

/** An index larger than this is not a Sluice pack's. */
const MAX_INDEX_BYTES = 512 * 1024 * 1024;
/** Disk space a restore leaves to the job: the pack's copy of the NARs never takes the last of it. */
const DISK_RESERVE_BYTES = 1024 * 1024 * 1024;
const GiB = 1024 * 1024 * 1024;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;

/**
 * Why the NARs an index describes are not copied, or undefined when they fit. The archive is
 * compressed: a pack written to fill the disk (a few MB of zstd for terabytes of zeros) would
 * otherwise fail the job, which a cache must never do.
 */
async function noRoomFor(bytes: number, dir: string): Promise<string | undefined> {
  const { bavail, bsize } = await statfs(dir);
  const free = bavail * bsize;
  if (bytes <= free - DISK_RESERVE_BYTES) return undefined;
  return `the pack's NARs (${gib(bytes)}) do not fit in the ${gib(free)} free on the disk (${gib(DISK_RESERVE_BYTES)} kept for the job): not restored`;
}

export interface StreamedPack {
  reader: PackReader;
  /** Settles when the whole archive was read (the reader records any failure itself). */
  finished: Promise<void>;
}

export async function streamRestore(
  tempDir: string,
  finished: () => boolean,
  targetDir: string,
  onError: (message: string) => void,
): Promise<StreamedPack | undefined> {
  const archive = await tailArchive(tempDir, finished);
  if (!archive) return undefined;
  await mkdir(join(targetDir, PACK_DIR), { recursive: true });
  const decompressor = archive.path.endsWith('.tgz') ? createGunzip() : createDecompressor('zstd');
  const bytes = Readable.from(archive.chunks).pipe(decompressor);
  const input = new ByteReader((bytes as AsyncIterable<Buffer>)[Symbol.asyncIterator]());
  let reader: PackReader | undefined;
  let consumed = false;
  let announce: (pack: StreamedPack | undefined) => void = () => undefined;
  const announced = new Promise<StreamedPack | undefined>((resolve) => (announce = resolve));
  const walk = readTar(input, async (file, contents) => {
    if (file.name === `${PACK_DIR}/${PACK_INDEX}` && !reader) {
      if (file.size > MAX_INDEX_BYTES) throw new Error(`the pack index is ${file.size} bytes`);
      const pieces: Buffer[] = [];
      for await (const piece of contents) pieces.push(piece);
      const index = parseIndex(Buffer.concat(pieces).toString('utf8'));
      reader = PackReader.streaming(index, join(targetDir, PACK_DIR, PACK_NARS));
      const tooBig = await noRoomFor(dataSize(index), targetDir);
      // Failed before it is announced: the daemon still tells tar to leave the NARs out.
      if (tooBig) reader.fail(tooBig);
      announce({ reader, finished: walk.then(() => undefined) });
      if (tooBig) throw new Error(tooBig);
    } else if (file.name === `${PACK_DIR}/${PACK_NARS}` && reader && !consumed) {
      consumed = true;
      await reader.consume(contents);
    } else {
      for await (const piece of contents) void piece;
    }
  }).then(
    () => {
      // An archive without the NARs after the index: nothing of it can be served.
      if (reader && !consumed) reader.fail(`the pack's archive holds no ${PACK_NARS}`);
    },
    (error: unknown) => {
      const message = `the pack's download could not be read: ${(error as Error).message}`;
      if (reader) reader.fail(message);
      else onError(message);
      bytes.destroy();
    },
  );
  void walk.finally(() => announce(undefined));
  return announced;
}
