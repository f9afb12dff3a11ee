/**
 * Serializes a store path as a NAR in-process, the bytes `nix-store --dump` writes: starting one
 * `nix-store` per path costs ~25 ms, which dominated pushing many small paths. Directory entries
 * are sorted by their raw bytes, as Nix does; file contents are streamed, never held whole.
 *
 * `narChunks` packs the NAR into one caller-owned buffer, yielding it each time it is full: no
 * allocation per chunk (on a push, a new buffer per read made V8 run a full GC every ~20 MB), and
 * the consumer (zstd) gets few large chunks however many small files and tokens the path has.
 */
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';

const PADDING = Buffer.alloc(8);

/** A NAR string: little-endian u64 length, the bytes, zero padding to a multiple of 8. */
function narString(value: string | Buffer): Buffer[] {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  return [u64(bytes.length), bytes, PADDING.subarray(0, (8 - (bytes.length % 8)) % 8)];
}

function u64(n: number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64LE(BigInt(n));
  return buffer;
}

function tokens(...values: (string | Buffer)[]): Buffer {
  return Buffer.concat(values.flatMap(narString));
}

/** A regular file's contents, to be read straight into the chunk buffer. */
interface FileContents {
  path: Buffer;
  size: number;
}

/** The NAR as a sequence of token bytes and file contents. */
async function* narPieces(path: Buffer): AsyncGenerator<Buffer | FileContents> {
  const stat = await lstat(path);
  if (stat.isSymbolicLink()) {
    yield tokens('(', 'type', 'symlink', 'target', await readlink(path, { encoding: 'buffer' }), ')');
  } else if (stat.isFile()) {
    // Nix marks a file executable when its owner may execute it.
    const executable = (stat.mode & 0o100) !== 0;
    yield Buffer.concat([
      tokens('(', 'type', 'regular', ...(executable ? ['executable', ''] : []), 'contents'),
      u64(stat.size),
    ]);
    yield { path, size: stat.size };
    yield Buffer.concat([PADDING.subarray(0, (8 - (stat.size % 8)) % 8), tokens(')')]);
  } else if (stat.isDirectory()) {
    yield tokens('(', 'type', 'directory');
    const names = (await readdir(path, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      yield tokens('entry', '(', 'name', name, 'node');
      yield* narPieces(Buffer.concat([path, Buffer.from('/'), name]));
      yield tokens(')');
    }
    yield tokens(')');
  } else {
    throw new Error(`${path.toString()} is neither a file, a directory nor a symlink`);
  }
}

async function* nar(path: string): AsyncGenerator<Buffer | FileContents> {
  yield tokens('nix-archive-1');
  yield* narPieces(Buffer.from(path));
}

/**
 * The NAR of `path`, packed into `buffer`: each yielded chunk is `buffer` (or, last, a prefix of
 * it), valid only until the next one is asked for, so the caller must be done with it by then.
 * A file that shrinks while being read fails the dump; one that changes otherwise makes a NAR
 * that does not match its NarHash, which the server refuses.
 */
export async function* narChunks(path: string, buffer: Buffer): AsyncGenerator<Buffer> {
  let used = 0;
  for await (const piece of nar(path)) {
    if (Buffer.isBuffer(piece)) {
      for (let offset = 0; offset < piece.length;) {
        const copied = piece.copy(buffer, used, offset);
        used += copied;
        offset += copied;
        if (used === buffer.length) {
          yield buffer;
          used = 0;
        }
      }
      continue;
    }
    const file = await open(piece.path, 'r');
    try {
      for (let position = 0; position < piece.size;) {
        const want = Math.min(buffer.length - used, piece.size - position);
        const { bytesRead } = await file.read(buffer, used, want, position);
        if (bytesRead === 0) throw new Error(`${piece.path.toString()} changed size while being read`);
        used += bytesRead;
        position += bytesRead;
        if (used === buffer.length) {
          yield buffer;
          used = 0;
        }
      }
    } finally {
      await file.close();
    }
  }
  if (used > 0) yield buffer.subarray(0, used);
}

const DUMP_CHUNK_BYTES = 128 * 1024;

/** The NAR of `path` as a stream (each chunk its own buffer). */
export function dumpNar(path: string): Readable {
  async function* copies(): AsyncGenerator<Buffer> {
    for await (const chunk of narChunks(path, Buffer.allocUnsafe(DUMP_CHUNK_BYTES))) yield Buffer.from(chunk);
  }
  return Readable.from(copies(), { objectMode: false });
}
