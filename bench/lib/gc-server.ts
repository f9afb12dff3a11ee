/**
 * The server for the garbage-collection benchmark, in a process of its own (run from the sources
 * with Node's type stripping): fills a data directory with `count` synthetic narinfos in one
 * slice (chains of 20; whole chains, 5% of them, older than max_age) and a small NAR file each
 * (seeded by SQL in one transaction: seeding is not what is measured),
 * starts the real server on it, prints `{"ready": {url, token}}`, then on each `gc` line of stdin
 * runs the server's own collection and prints `{"gc": {seconds, removedPaths, removedNars}}`.
 *
 * usage: node --experimental-transform-types --import <ts-loader.mjs> gc-server.ts <dataDir> <count>
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DatabaseSync } from 'node:sqlite';
import { parseConfig } from '../../src/server/config/server-config.js';
import { dataPaths } from '../../src/server/data-dir.js';
import { createExchange } from '../../src/server/exchange/index.js';
import { startServer } from '../../src/server/index.js';
import { loadServerKeys } from '../../src/server/keys.js';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata-store.js';

const ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
const DAY = 86_400_000;
const CHAIN = 20;
const SLICE = 'bench/gc';

/** Random nix32 text; a 52-character sha256 starts with 0 or 1 (52 × 5 bits hold 256 and 4 more). */
function nix32(length: number): string {
  const text = [...randomBytes(length)].map((byte) => ALPHABET[byte % 32]).join('');
  return length === 52 ? `${text.charCodeAt(0) % 2}${text.slice(1)}` : text;
}

/** Seeding only (the collection and lookups go through the real server): rows by SQL, one transaction. */
async function populate(dataDir: string, count: number): Promise<string[]> {
  const paths = dataPaths(dataDir);
  mkdirSync(paths.nars, { recursive: true });
  await new SqliteMetadataStore(paths.database).close(); // creates the schema
  const db = new DatabaseSync(paths.database);
  const insert = db.prepare(
    `INSERT INTO narinfos (slice, hash_part, store_path, nar_key, narinfo, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
  );
  const now = Date.now();
  const kept: string[] = [];
  let previous = '';
  db.exec('BEGIN');
  for (let i = 0; i < count; i++) {
    if (i % CHAIN === 0) previous = '';
    const old = Math.floor(i / CHAIN) % 20 === 0; // every 20th chain: 5%
    const hashPart = nix32(32);
    const key = `${nix32(52)}.nar`;
    const createdAt = new Date(now - (old ? 40 : 2) * DAY);
    const storePath = `/nix/store/${hashPart}-p${i}`;
    const narinfo = [
      `StorePath: ${storePath}`,
      `URL: nar/${key}`,
      'Compression: none',
      `FileHash: sha256:${key.slice(0, 52)}`,
      'FileSize: 1024',
      `NarHash: sha256:${nix32(52)}`,
      'NarSize: 1024',
      `References: ${previous}`,
      '',
    ].join('\n');
    insert.run(SLICE, hashPart, storePath, key, narinfo, +createdAt);
    const file = join(paths.nars, key);
    writeFileSync(file, key);
    utimesSync(file, createdAt, createdAt);
    previous = `${hashPart}-p${i}`;
    if (!old) kept.push(hashPart);
  }
  db.exec('COMMIT');
  db.close();
  return kept;
}

const [dataDir, countText] = process.argv.slice(2) as [string, string];
const kept = await populate(dataDir, Number(countText));
const config = {
  ...parseConfig('retention: { max_age: 30d }\ngc_interval: 1y\n'),
  listen: { host: '127.0.0.1', port: 0 },
  data: dataDir,
};
const server = await startServer(config, { logDestination: { write: () => undefined } });
const { tokenKey } = await loadServerKeys(config, server.dataDir);
const store = new SqliteMetadataStore(dataPaths(server.dataDir).database);
const exchange = createExchange(config, tokenKey, { store });
const { token } = await exchange.createReadToken({ read: [SLICE], ttlSeconds: 3600, name: 'bench' });
const keptFile = join(dataDir, 'kept.json');
writeFileSync(keptFile, JSON.stringify(kept));
process.stdout.write(`${JSON.stringify({ ready: { url: server.url, token, keptFile } })}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'gc') {
    const started = performance.now();
    const report = await server.collectGarbage();
    const seconds = (performance.now() - started) / 1000;
    const removedPaths = report.slices.reduce((sum, slice) => sum + slice.removedPaths.length, 0);
    process.stdout.write(
      `${JSON.stringify({ gc: { seconds, removedPaths, removedNars: report.nars.length } })}\n`,
    );
  } else if (line === 'exit') break;
}
await store.close();
await server.close();
