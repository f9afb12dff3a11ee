/**
 * `.narinfo` files: parse strictly (every problem named), serialize in the field order Nix writes,
 * so what `nix copy` uploads round-trips byte for byte. Unknown fields are kept for forward
 * compatibility and written after the known ones.
 */
import { Hash, HashError } from './hash.js';
import { DEFAULT_STORE_DIR, StorePath, StorePathError } from './store-path.js';

export const NARINFO_MAX_BYTES = 64 * 1024;

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

function parseHash(field: string, value: string): Hash {
  try {
    return Hash.parse(value);
  } catch (e) {
    if (e instanceof HashError) throw new NarInfoError(`${field}: ${e.message}`);
    throw e;
  }
}

function checkBaseName(field: string, value: string): string {
  try {
    return StorePath.fromBaseName(value).baseName;
  } catch (e) {
    if (e instanceof StorePathError) throw new NarInfoError(`${field}: ${e.message}`);
    throw e;
  }
}

export function parseNarInfo(
  text: string,
  options: { storeDir?: string; maxBytes?: number } = {},
): NarInfo {
  const storeDir = options.storeDir ?? DEFAULT_STORE_DIR;
  const maxBytes = options.maxBytes ?? NARINFO_MAX_BYTES;
  if (Buffer.byteLength(text) > maxBytes) throw new NarInfoError(`narinfo is larger than ${maxBytes} bytes`);

  const fields = new Map<string, string>();
  const sigs: string[] = [];
  const extra: [string, string][] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, index) => {
    const sep = line.indexOf(': ');
    if (sep <= 0) throw new NarInfoError(`line ${index + 1} is not 'Key: value': '${line.slice(0, 80)}'`);
    const key = line.slice(0, sep);
    const value = line.slice(sep + 2);
    if (key === 'Sig') {
      sigs.push(value);
      return;
    }
    if (fields.has(key) || extra.some(([k]) => k === key)) throw new NarInfoError(`duplicate field '${key}'`);
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
  const fileHash = fields.get('FileHash');
  if (fileHash !== undefined) info.fileHash = parseHash('FileHash', fileHash);
  const fileSize = fields.get('FileSize');
  if (fileSize !== undefined) info.fileSize = parseSize('FileSize', fileSize);
  const references = fields.get('References');
  if (references) info.references = references.split(' ').map((r) => checkBaseName('References', r));
  const deriver = fields.get('Deriver');
  if (deriver !== undefined) info.deriver = checkBaseName('Deriver', deriver);
  const system = fields.get('System');
  if (system !== undefined) info.system = system;
  const ca = fields.get('CA');
  if (ca !== undefined) info.ca = ca;
  return info;
}

export function serializeNarInfo(info: NarInfo): string {
  let out = `StorePath: ${info.storePath}\nURL: ${info.url}\nCompression: ${info.compression}\n`;
  if (info.fileHash) out += `FileHash: ${info.fileHash.toString()}\n`;
  if (info.fileSize !== undefined) out += `FileSize: ${info.fileSize}\n`;
  out += `NarHash: ${info.narHash.toString()}\nNarSize: ${info.narSize}\n`;
  out += `References: ${info.references.join(' ')}\n`;
  if (info.deriver !== undefined) out += `Deriver: ${info.deriver}\n`;
  if (info.system !== undefined) out += `System: ${info.system}\n`;
  for (const sig of info.sigs) out += `Sig: ${sig}\n`;
  if (info.ca !== undefined) out += `CA: ${info.ca}\n`;
  for (const [key, value] of info.extra) out += `${key}: ${value}\n`;
  return out;
}

/** The hash part of the narinfo's store path, which names the `.narinfo` file. */
export function narInfoHashPart(info: NarInfo, storeDir = DEFAULT_STORE_DIR): string {
  return StorePath.parse(info.storePath, storeDir).hashPart;
}
