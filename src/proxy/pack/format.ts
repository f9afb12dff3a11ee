/**
 * A pack: the store paths one CI job saved to the GitHub Actions cache, as one cache entry of two
 * files. `index.json` (read first, small) states each path's narinfo facts and where its NAR sits
 * in `nars.zst`, the zstd-compressed NARs concatenated, references before referrers. @actions/cache
 * tars the two files in this order, so the index arrives before the NARs.
 */
import { Hash } from '../../nix/hash.js';
import { StorePath } from '../../nix/store-path.js';

export { PACK_CACHE_PATHS, PACK_DIR, PACK_INDEX, PACK_NARS } from '../../contracts/pack-api.js';
export const PACK_FORMAT = 'sluice-pack';
export const PACK_VERSION = 1;

export interface PackEntry {
  /** Full store path. */
  path: string;
  narHash: Hash;
  narSize: number;
  /** Base names (`<hash>-<name>`), as in a narinfo. */
  references: string[];
  deriver?: string;
  ca?: string;
  /** Where the compressed NAR starts in nars.zst, and its length. */
  offset: number;
  size: number;
}

export interface PackIndex {
  createdAt: string;
  entries: PackEntry[];
}

export class PackFormatError extends Error {}

/**
 * An index's own text inside an error, cut short: errors reach the daemon's log, the post step's
 * warnings and the job summary, and a hostile index could hold a string of hundreds of MiB.
 */
function clip(text: string): string {
  return text.length <= 200 ? text : `${text.slice(0, 200)}… (${text.length} characters)`;
}

export function serializeIndex(index: PackIndex): string {
  return JSON.stringify({
    format: PACK_FORMAT,
    version: PACK_VERSION,
    createdAt: index.createdAt,
    entries: index.entries.map((e) => ({ ...e, narHash: e.narHash.toString() })),
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function count(value: unknown, field: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0)
    throw new PackFormatError(`${field} must be a non-negative integer`);
  return value as number;
}

function baseName(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new PackFormatError(`${field} must be a store path base name`);
  try {
    StorePath.fromBaseName(value);
  } catch (e) {
    throw new PackFormatError(`${field}: ${clip((e as Error).message)}`);
  }
  return value;
}

function parseEntry(raw: unknown, i: number, expectedOffset: number): PackEntry {
  const at = `entries[${i}]`;
  if (!isRecord(raw)) throw new PackFormatError(`${at} must be an object`);
  if (typeof raw.path !== 'string') throw new PackFormatError(`${at}.path must be a store path`);
  let narHash: Hash;
  try {
    StorePath.parse(raw.path);
    narHash = Hash.parse(String(raw.narHash));
  } catch (e) {
    throw new PackFormatError(`${at}: ${clip((e as Error).message)}`);
  }
  if (narHash.algorithm !== 'sha256') throw new PackFormatError(`${at}.narHash must be sha256`);
  if (!Array.isArray(raw.references)) throw new PackFormatError(`${at}.references must be an array`);
  const entry: PackEntry = {
    path: raw.path,
    narHash,
    narSize: count(raw.narSize, `${at}.narSize`),
    references: raw.references.map((r, j) => baseName(r, `${at}.references[${j}]`)),
    offset: count(raw.offset, `${at}.offset`),
    size: count(raw.size, `${at}.size`),
  };
  if (entry.offset !== expectedOffset)
    throw new PackFormatError(`${at}.offset is ${entry.offset}, expected ${expectedOffset}`);
  if (raw.deriver !== undefined) entry.deriver = baseName(raw.deriver, `${at}.deriver`);
  if (raw.ca !== undefined) {
    if (typeof raw.ca !== 'string' || /[\n\r]/.test(raw.ca))
      throw new PackFormatError(`${at}.ca must be a line`);
    entry.ca = raw.ca;
  }
  return entry;
}

/** Parses and checks an index: offsets contiguous from 0, valid paths and hashes, no path twice. */
export function parseIndex(text: string): PackIndex {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PackFormatError(`the pack index is not JSON: ${clip((e as Error).message)}`);
  }
  if (!isRecord(json) || json.format !== PACK_FORMAT)
    throw new PackFormatError('the pack index is not a Sluice pack index');
  if (json.version !== PACK_VERSION)
    throw new PackFormatError(
      `pack format version ${clip(JSON.stringify(json.version) ?? 'undefined')} is not ${PACK_VERSION}`,
    );
  if (!Array.isArray(json.entries)) throw new PackFormatError('entries must be an array');
  const entries: PackEntry[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const [i, raw] of json.entries.entries()) {
    const entry = parseEntry(raw, i, offset);
    if (seen.has(entry.path)) throw new PackFormatError(`${entry.path} is in the pack twice`);
    seen.add(entry.path);
    offset += entry.size;
    entries.push(entry);
  }
  return { createdAt: typeof json.createdAt === 'string' ? json.createdAt : '', entries };
}

/** Bytes of NAR data the index describes: nars.zst must be exactly this long. */
export function dataSize(index: PackIndex): number {
  const last = index.entries.at(-1);
  return last ? last.offset + last.size : 0;
}
