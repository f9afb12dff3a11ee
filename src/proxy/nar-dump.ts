/**
 * Serializes a store path as a NAR in-process, the bytes `nix-store --dump` writes: starting one
 * `nix-store` per path costs ~25 ms, which dominated pushing many small paths. Directory entries
 * are sorted by their raw bytes, as Nix does; file contents are streamed, never held whole.
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';

const FILE_CHUNK_BYTES = 128 * 1024;
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

async function* node(path: Buffer): AsyncGenerator<Buffer> {
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
    let written = 0;
    for await (const chunk of createReadStream(path, { highWaterMark: FILE_CHUNK_BYTES })) {
      written += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (written !== stat.size) throw new Error(`${path.toString()} changed size while being read`);
    yield Buffer.concat([PADDING.subarray(0, (8 - (stat.size % 8)) % 8), tokens(')')]);
  } else if (stat.isDirectory()) {
    yield tokens('(', 'type', 'directory');
    const names = (await readdir(path, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      yield tokens('entry', '(', 'name', name, 'node');
      yield* node(Buffer.concat([path, Buffer.from('/'), name]));
      yield tokens(')');
    }
    yield tokens(')');
  } else {
    throw new Error(`${path.toString()} is neither a file, a directory nor a symlink`);
  }
}

async function* nar(path: string): AsyncGenerator<Buffer> {
  yield tokens('nix-archive-1');
  yield* node(Buffer.from(path));
}

/** The NAR of `path` as a stream. */
export function dumpNar(path: string): Readable {
  return Readable.from(nar(path), { objectMode: false });
}
