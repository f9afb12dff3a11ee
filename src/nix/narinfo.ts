/**
 * `.narinfo` files: parse strictly (every problem named), serialize in the field order Nix writes,
 * so what `nix copy` uploads round-trips byte for byte. Unknown fields are kept for forward
 * compatibility and written after the known ones.
 */
import { Hash, HashError } from './hash.js';
import { DEFAULT_STORE_DIR, StorePath, StorePathError } from './store-path.js';

/** Far above any real narinfo (even thousands of references), low enough to refuse abuse. */
export const NARINFO_MAX_BYTES = 1024 * 1024;

// Field names as Nix writes them; anything else in a key (spaces, colons) is a corrupt line.
const KEY_PATTERN = /^[A-Za-z][A-Za-z0-9-]*$/;

/** Compression methods Nix can read from a binary cache. */
export const COMPRESSIONS = ['none', 'xz', 'bzip2', 'zstd', 'br', 'gzip', 'lz4', 'lzip'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface NarInfo {
  storePath: string;
  url: string;
  compression: Compression;
  fileHash?: Hash;
  fileSize?: number;
  narHash: Hash;
  narSize: number;
  /** Base names (`<hash>-<name>`), as in the file. */
  references: string[];
  deriver?: string;
  system?: string;
  sigs: string[];
  ca?: string;
  /** Fields this version does not know, in file order. */
  extra: [string, string][];
}

export class NarInfoError extends Error {}

const KNOWN_FIELDS = new Set([
  'StorePath',
  'URL',
  'Compression',
  'FileHash',
  'FileSize',
  'NarHash',
  'NarSize',
  'References',
  'Deriver',
  'System',
  'Sig',
  'CA',
]);

function parseSize(field: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new NarInfoError(`${field} '${value}' is not a non-negative integer`);
  const size = Number(value);
  if (!Number.isSafeInteger(size)) throw new NarInfoError(`${field} '${value}' is too large`);
  return size;
}

/** A `sha256:...` (or SRI) hash, the only kind Nix writes into narinfos. */
function parseHash(field: string, value: string): Hash {
  let hash: Hash;
  try {
    hash = Hash.parse(value);
  } catch (e) {
    if (e instanceof HashError) throw new NarInfoError(`${field}: ${e.message}`);
    throw e;
  }
  if (hash.algorithm !== 'sha256') throw new NarInfoError(`${field} '${value}' is not a sha256 hash`);
  return hash;
}

function checkBaseName(field: string, value: string): string {
  try {
    return StorePath.fromBaseName(value).baseName;
  } catch (e) {
    if (e instanceof StorePathError) throw new NarInfoError(`${field}: ${e.message}`);
    throw e;
  }
}

export function parseNarInfo(text: string, options: { storeDir?: string; maxBytes?: number } = {}): NarInfo {
  const storeDir = options.storeDir ?? DEFAULT_STORE_DIR;
  const maxBytes = options.maxBytes ?? NARINFO_MAX_BYTES;
  if (Buffer.byteLength(text) > maxBytes) throw new NarInfoError(`narinfo is larger than ${maxBytes} bytes`);

  if (!text.endsWith('\n')) throw new NarInfoError(`narinfo does not end with a newline`);

  const fields = new Map<string, string>();
  const seen = new Set<string>();
  const sigs: string[] = [];
  const extra: [string, string][] = [];
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, index) => {
    const sep = line.indexOf(': ');
    const key = line.slice(0, Math.max(sep, 0));
    if (sep <= 0 || !KEY_PATTERN.test(key)) {
      throw new NarInfoError(`line ${index + 1} is not 'Key: value': '${line.slice(0, 80)}'`);
    }
    const value = line.slice(sep + 2);
    if (key === 'Sig') {
      if (!/^[^:\s]+:[A-Za-z0-9+/]+={0,2}$/.test(value))
        throw new NarInfoError(`Sig '${value}' is not 'keyname:base64'`);
      sigs.push(value);
      return;
    }
    if (seen.has(key)) throw new NarInfoError(`duplicate field '${key}'`);
    seen.add(key);
    if (KNOWN_FIELDS.has(key)) fields.set(key, value);
    else extra.push([key, value]);
  });

  const required = (key: string): string => {
    const value = fields.get(key);
    if (value === undefined) throw new NarInfoError(`missing required field '${key}'`);
    return value;
  };

  const storePath = required('StorePath');
  try {
    StorePath.parse(storePath, storeDir);
  } catch (e) {
    if (e instanceof StorePathError) throw new NarInfoError(`StorePath: ${e.message}`);
    throw e;
  }
  const url = required('URL');
  if (url.length === 0) throw new NarInfoError(`URL is empty`);
  const compression = fields.get('Compression') ?? 'bzip2';
  if (!(COMPRESSIONS as readonly string[]).includes(compression)) {
    throw new NarInfoError(`unknown Compression '${compression}'`);
  }
  const info: NarInfo = {
    storePath,
    url,
    compression: compression as Compression,
    narHash: parseHash('NarHash', required('NarHash')),
    narSize: parseSize('NarSize', required('NarSize')),
    references: [],
    sigs,
    extra,
  };
  if (info.narSize === 0) throw new NarInfoError(`NarSize is 0: no NAR is empty`);
  const fileHash = fields.get('FileHash');
  if (fileHash !== undefined) info.fileHash = parseHash('FileHash', fileHash);
  const fileSize = fields.get('FileSize');
  if (fileSize !== undefined) info.fileSize = parseSize('FileSize', fileSize);
  const references = fields.get('References');
  if (references) info.references = references.split(' ').map((r) => checkBaseName('References', r));
  const deriver = fields.get('Deriver');
  // Old caches write `unknown-deriver`; Nix reads that as no deriver, and so do we.
  if (deriver !== undefined && deriver !== 'unknown-deriver')
    info.deriver = checkBaseName('Deriver', deriver);
  const system = fields.get('System');
  if (system !== undefined) info.system = system;
  const ca = fields.get('CA');
  if (ca !== undefined) info.ca = ca;
  return info;
}

/** Writes `info` in the order Nix writes; refuses values that would break the line format. */
export function serializeNarInfo(info: NarInfo): string {
  const lines: string[] = [];
  const line = (key: string, value: string | number | Hash | undefined): void => {
    if (value === undefined) return;
    const text = String(value);
    if (text.includes('\n')) throw new NarInfoError(`field '${key}' contains a newline`);
    lines.push(`${key}: ${text}\n`);
  };
  line('StorePath', info.storePath);
  line('URL', info.url);
  line('Compression', info.compression);
  line('FileHash', info.fileHash);
  line('FileSize', info.fileSize);
  line('NarHash', info.narHash);
  line('NarSize', info.narSize);
  // A malformed base name (one with a space, say) would read back as other references.
  line('References', info.references.map((r) => checkBaseName('References', r)).join(' '));
  line('Deriver', info.deriver === undefined ? undefined : checkBaseName('Deriver', info.deriver));
  line('System', info.system);
  for (const sig of info.sigs) line('Sig', sig);
  line('CA', info.ca);
  for (const [key, value] of info.extra) {
    if (!KEY_PATTERN.test(key) || KNOWN_FIELDS.has(key))
      throw new NarInfoError(`cannot write extra field '${key}'`);
    line(key, value);
  }
  return lines.join('');
}

/** The hash part of the narinfo's store path, which names the `.narinfo` file. */
export function narInfoHashPart(info: NarInfo, storeDir = DEFAULT_STORE_DIR): string {
  return StorePath.parse(info.storePath, storeDir).hashPart;
}
