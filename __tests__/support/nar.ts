/**
 * NARs written byte by byte, for uploads whose shape matters (bombs, trailing data, big files of
 * zeros) and that would be slow or impossible to build with Nix. The format is Nix's: strings as a
 * little-endian u64 length, the bytes and zero padding to 8; `nix-store --restore` reads these.
 */

/** A NAR string (length, bytes, padding). */
export function narString(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(bytes.length));
  return Buffer.concat([length, bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8)]);
}

const tokens = (...values: string[]) => Buffer.concat(values.map((value) => narString(value)));

/** The start of a one-file NAR that declares `size` bytes of contents: its contents come next. */
export function regularFileHeader(size: number): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(size));
  return Buffer.concat([tokens('nix-archive-1', '(', 'type', 'regular', 'contents'), length]);
}

/** What follows `size` bytes of contents to end the one-file NAR. */
export function regularFileTrailer(size: number): Buffer {
  return Buffer.concat([Buffer.alloc((8 - (size % 8)) % 8), tokens(')')]);
}

/** A NAR of one regular file. */
export function regularFileNar(contents: Buffer): Buffer {
  return Buffer.concat([regularFileHeader(contents.length), contents, regularFileTrailer(contents.length)]);
}

/** A NAR of a directory of regular files, `name → contents` (names in sorted order). */
export function directoryNar(files: [string, Buffer][]): Buffer {
  const parts: Buffer[] = [tokens('nix-archive-1', '(', 'type', 'directory')];
  for (const [name, contents] of files) {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(contents.length));
    parts.push(
      tokens('entry', '(', 'name', name, 'node', '(', 'type', 'regular', 'contents'),
      length,
      contents,
      regularFileTrailer(contents.length),
      tokens(')'),
    );
  }
  parts.push(tokens(')'));
  return Buffer.concat(parts);
}
