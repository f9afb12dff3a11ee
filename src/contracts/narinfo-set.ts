/**
 * The narinfo set route as server and proxy both know it: `GET /_api/v1/narinfo-set[?since=<cursor>]`
 * answers the store-path hashes the token's readable slices hold, as sorted 32-bit prefixes, so the
 * proxy answers most misses from memory. A prefix is the first 32 of the hash part's 160 bits, so a
 * hash the set does not hold is claimed with probability count / 2^32 (2.3e-4 for a million paths):
 * a claimed path is still asked of the server, which has the last word.
 *
 * Body: one JSON header line `{"format", "cursor", "count", "full"}`, then `count` LEB128 varints:
 * the first prefix, then the gaps between successive prefixes (strictly increasing). `full: false`
 * answers `?since=`: the prefixes of narinfos committed after that cursor (maybe some already sent).
 */
import { NIX32_ALPHABET } from '../nix/nix32.js';

export const NARINFO_SET_PATH = '/_api/v1/narinfo-set';
export const NARINFO_SET_FORMAT = 'sluice-narinfo-set-1';
export const NARINFO_SET_CONTENT_TYPE = 'application/vnd.sluice.narinfo-set';
/** A cursor is opaque to the proxy: the store's position (a counter or a transaction id), in digits. */
export const SET_CURSOR_PATTERN = /^[0-9]{1,20}$/;

export interface NarInfoSet {
  cursor: string;
  /** True for the whole set, false for what was added since a cursor. */
  full: boolean;
  /** Strictly increasing. */
  prefixes: Uint32Array;
}

const DIGIT = new Int8Array(128).fill(-1);
for (const [i, c] of [...NIX32_ALPHABET].entries()) DIGIT[c.charCodeAt(0)] = i;

/**
 * The first 32 bits of a hash part (32 nix32 characters of 5 bits each, most significant first):
 * the alphabet is in ASCII order, so hash parts sorted as strings have sorted prefixes. `text` may
 * hold many hash parts back to back; `offset` says which characters to read.
 */
export function hashPrefix(text: string, offset = 0): number {
  let value = 0;
  for (let i = 0; i < 7; i++) value = value * 32 + DIGIT[text.charCodeAt(offset + i)]!;
  // 35 bits read; the top 32 are the prefix.
  return Math.floor(value / 8);
}

/** Sorts in place and drops repeats: the strictly increasing form the set is sent in. */
export function sortedUnique(prefixes: Uint32Array): Uint32Array {
  prefixes.sort();
  let n = 0;
  for (let i = 0; i < prefixes.length; i++) {
    if (n === 0 || prefixes[i] !== prefixes[n - 1]) prefixes[n++] = prefixes[i]!;
  }
  return prefixes.subarray(0, n);
}

/** Whether a strictly increasing array holds `prefix` (binary search). */
export function hasPrefix(sorted: Uint32Array, prefix: number): boolean {
  let low = 0;
  let high = sorted.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const value = sorted[middle]!;
    if (value === prefix) return true;
    if (value < prefix) low = middle + 1;
    else high = middle - 1;
  }
  return false;
}

export function encodeNarInfoSet(set: NarInfoSet): Buffer {
  const header = Buffer.from(
    `${JSON.stringify({ format: NARINFO_SET_FORMAT, cursor: set.cursor, count: set.prefixes.length, full: set.full })}\n`,
  );
  // Gaps of a million random prefixes average 4,295: two bytes each, at most five.
  const body = Buffer.allocUnsafe(header.length + set.prefixes.length * 5);
  header.copy(body);
  let at = header.length;
  let previous = 0;
  for (let i = 0; i < set.prefixes.length; i++) {
    const value = set.prefixes[i]!;
    let gap = value - previous;
    previous = value;
    while (gap >= 0x80) {
      body[at++] = (gap & 0x7f) | 0x80;
      gap = Math.floor(gap / 128);
    }
    body[at++] = gap;
  }
  return body.subarray(0, at);
}

export class NarInfoSetError extends Error {}

/** Reads a body `encodeNarInfoSet` wrote; throws NarInfoSetError naming what is wrong. */
export function decodeNarInfoSet(body: Buffer): NarInfoSet {
  const newline = body.indexOf(10);
  if (newline === -1) throw new NarInfoSetError('narinfo set has no header line');
  let header: { format?: unknown; cursor?: unknown; count?: unknown; full?: unknown };
  try {
    header = JSON.parse(body.subarray(0, newline).toString('utf8')) as typeof header;
  } catch {
    throw new NarInfoSetError('narinfo set header is not JSON');
  }
  const { format, cursor, count, full } = header ?? {};
  if (format !== NARINFO_SET_FORMAT)
    throw new NarInfoSetError(`unknown narinfo set format ${String(format)}`);
  if (typeof cursor !== 'string' || !SET_CURSOR_PATTERN.test(cursor))
    throw new NarInfoSetError('narinfo set cursor is not digits');
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0)
    throw new NarInfoSetError('narinfo set count is not a count');
  if (typeof full !== 'boolean') throw new NarInfoSetError('narinfo set says neither full nor not');
  const prefixes = new Uint32Array(count);
  let at = newline + 1;
  let value = 0;
  for (let i = 0; i < count; i++) {
    let gap = 0;
    let scale = 1;
    for (;;) {
      if (at >= body.length) throw new NarInfoSetError(`narinfo set ends after ${i} of ${count} prefixes`);
      const byte = body[at++]!;
      gap += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) break;
      if (scale > 2 ** 35) throw new NarInfoSetError('narinfo set holds an overlong number');
    }
    if (i > 0 && gap === 0) throw new NarInfoSetError('narinfo set prefixes are not strictly increasing');
    value += gap;
    if (value > 0xffffffff) throw new NarInfoSetError('narinfo set prefix beyond 32 bits');
    prefixes[i] = value;
  }
  if (at !== body.length) throw new NarInfoSetError('narinfo set has bytes after its last prefix');
  return { cursor, full, prefixes };
}
