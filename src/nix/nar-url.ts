/**
 * The NAR URL grammar, `nar/<52-character nix32 sha256>.nar<ext>`, and the one map between a
 * compression and its extension. The hash is the file's (Nix's `nar/<filehash>`) or, on Sluice's
 * upload route, the NAR's: the grammar is the same.
 */
import type { NarCompression } from './nar.js';
import { NIX32_CLASS } from './nix32.js';

/** File name extensions Nix gives compressed NARs. */
export const NAR_EXTENSIONS: Record<NarCompression, string> = { none: '', zstd: '.zst', xz: '.xz' };

const COMPRESSION_OF_EXTENSION = new Map(
  Object.entries(NAR_EXTENSIONS).map(([compression, ext]) => [ext, compression as NarCompression]),
);

/** `<hash>.nar<ext>`, the file name part; the extension any `.[a-z0-9]+` so an unknown one can be named. */
const NAR_FILE_NAME = new RegExp(`^(${NIX32_CLASS}{52})\\.nar((?:\\.[a-z0-9]+)?)$`);

export interface NarFileName {
  /** The 52 nix32 characters of the sha256 in the name. */
  hash: string;
  /** `''`, `.zst`, `.xz`, or another the caller refuses. */
  extension: string;
  /** undefined for an extension Sluice does not support. */
  compression: NarCompression | undefined;
  /** `<hash>.nar<ext>`: the blob key. */
  key: string;
}

/** `<hash>.nar<ext>` → its parts; undefined when it is not that shape. */
export function parseNarFileName(name: string): NarFileName | undefined {
  const match = NAR_FILE_NAME.exec(name);
  if (!match) return undefined;
  const extension = match[2] as string;
  return {
    hash: match[1] as string,
    extension,
    compression: COMPRESSION_OF_EXTENSION.get(extension),
    key: name,
  };
}

/** A narinfo's `URL:` (`nar/<hash>.nar<ext>`) → its parts; undefined when it is not that shape. */
export function parseNarUrl(url: string): NarFileName | undefined {
  return url.startsWith('nar/') ? parseNarFileName(url.slice('nar/'.length)) : undefined;
}

export function narFileName(hashNix32: string, compression: NarCompression): string {
  return `${hashNix32}.nar${NAR_EXTENSIONS[compression]}`;
}

export function narUrl(hashNix32: string, compression: NarCompression): string {
  return `nar/${narFileName(hashNix32, compression)}`;
}
