/**
 * Lookups against a large cache: the server's database seeded with `sizes.largeCache` narinfos by
 * direct inserts (pushing a million paths would take hours), then the lookup scenario's 10,000
 * GETs (half hits among the seeded paths) through a fresh job's proxy, which first loads the
 * narinfo set of all of them, against nginx serving the hit narinfos as files. Reports the set's
 * size, how long it took to load, and the daemon's peak RSS with it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Hash } from '../../src/nix/hash.js';
import { serializeNarInfo, type NarInfo } from '../../src/nix/narinfo.js';
import { NIX32_ALPHABET } from '../../src/nix/nix32.js';
import { narInfoFingerprint, parseSecretKey, signFingerprint } from '../../src/nix/signing.js';
import type { Context } from '../lib/context.js';
import { expectHitsAndMisses, getAll } from '../lib/load.js';
import { NGINX_INSTALL_HINT, startNginx, type StaticServer } from '../lib/nginx.js';
import { randomHash } from '../lib/hashes.js';
import type { Row, Side } from '../lib/report.js';
import { reason, type Daemon } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { median, rotate } from '../lib/stats.js';

const SLICE = 'bench/app';

/** `count` random hash parts (160 random bits each: no two alike in practice). */
function hashParts(count: number): string[] {
  const bytes = randomBytes(count * 32);
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    let part = '';
    for (let j = 0; j < 32; j++) part += NIX32_ALPHABET[bytes[i * 32 + j]! & 31];
    parts.push(part);
  }
  return parts;
}

/** A narinfo signed with the server's key, as an upload stores it (the fake NAR is never fetched). */
function signedNarInfo(hashPart: string, index: number, key: ReturnType<typeof parseSecretKey>): string {
  const hash = Hash.parse(`sha256:${'1'.repeat(52)}`);
  const info: NarInfo = {
    storePath: `/nix/store/${hashPart}-sluice-bench-large-${index}`,
    url: `nar/${'1'.repeat(52)}.nar.zst`,
    compression: 'zstd',
    fileHash: hash,
    fileSize: 1024,
    narHash: hash,
    narSize: 1024,
    references: [],
    sigs: [],
    extra: [],
  };
  return serializeNarInfo({ ...info, sigs: [signFingerprint(narInfoFingerprint(info), key)] });
}

/**
 * Inserts `total` narinfo rows into the (running) server's SQLite database, the first `hits` of
 * them real signed narinfos (also written as files for nginx); the rest are rows no lookup reads.
 */
function seed(dataDir: string, total: number, hits: number, nginxDir: string): string[] {
  const key = parseSecretKey(readFileSync(join(dataDir, 'signing-key.sec'), 'utf8').trim());
  const parts = hashParts(total);
  const db = new DatabaseSync(join(dataDir, 'sluice.db'));
  try {
    // Random keys into four indexes: a large page cache keeps the B-trees' pages in memory.
    db.exec('PRAGMA busy_timeout = 10000; PRAGMA cache_size = -262144');
    const insert = db.prepare(
      `INSERT OR IGNORE INTO narinfos (slice, hash_part, store_path, nar_key, narinfo, created_at, signed_by)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    // The rows no lookup reads go in 10,000 per statement (one JSON array each): a statement per
    // row cost ~100 µs of JS and binding.
    const insertMany = db.prepare(
      `INSERT OR IGNORE INTO narinfos (slice, hash_part, store_path, nar_key, narinfo, created_at)
         SELECT ?, value, '', '', '', ? FROM json_each(?)`,
    );
    db.exec('BEGIN');
    const now = Date.now();
    parts.slice(0, hits).forEach((part, i) => {
      const narinfo = signedNarInfo(part, i, key);
      writeFileSync(join(nginxDir, `${part}.narinfo`), narinfo);
      insert.run(SLICE, part, `/nix/store/${part}-x`, '', narinfo, now, key.publicKey.text);
    });
    for (let i = hits; i < total; i += 10_000)
      insertMany.run(SLICE, now, JSON.stringify(parts.slice(i, Math.min(total, i + 10_000))));
    db.exec('COMMIT');
  } finally {
    db.close();
  }
  return parts.slice(0, hits);
}

export async function largeCacheScenarios(context: Context): Promise<Row[]> {
  const { sizes, log } = context;
  const total = sizes.largeCache;
  const label = total.toLocaleString('en-US');
  const hits = sizes.lookups / 2;
  const nginxDir = context.scratch('large-cache-nginx-files');
  writeFileSync(join(nginxDir, 'nix-cache-info'), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
  let stack: Stack | undefined;
  let nginx: StaticServer | undefined;
  let sluiceMissing: string | undefined;
  let known: string[] = [];
  try {
    stack = await startStack(context, ['cli', 'proxy']);
    log(`large cache: seeding ${label} narinfos into the server's database`);
    const started = Date.now();
    known = seed(stack.server.dataDir, total, hits, nginxDir);
    log(`large cache: seeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    sluiceMissing = reason(error);
    await stack?.close();
    stack = undefined;
  }
  const nginxMissing = context.nginx ? undefined : `nginx is not installed (${NGINX_INSTALL_HINT})`;
  if (context.nginx) nginx = await startNginx(context.nginx, nginxDir, context.scratch('nginx'));

  const requests = () => {
    const misses = Array.from({ length: sizes.lookups - hits }, () => `/${randomHash()}.narinfo`);
    const paths = [...known.map((part) => `/${part}.narinfo`), ...misses];
    for (let i = paths.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [paths[i], paths[j]] = [paths[j]!, paths[i]!];
    }
    return paths;
  };
  const loads: { seconds: number; bytes: number; prefixes: number }[] = [];
  const fromRecent: number[] = [];
  const streamed: number[] = [];
  const rss: number[] = [];
  const viaProxy = async () => {
    let daemon: Daemon | undefined;
    try {
      daemon = await stack!.startJob();
      const set = (await daemon.lookupSetLoaded()).lookupSet;
      if (set?.state !== 'loaded') throw new Error(`the daemon's narinfo set is ${set?.state ?? 'absent'}`);
      loads.push({ seconds: set.loadSeconds, bytes: set.bytes, prefixes: set.prefixes });
      const result = await getAll(daemon.url, requests());
      expectHitsAndMisses(result, hits, sizes.lookups, 'the proxy');
      const after = (await daemon.stats()).lookupSet;
      fromRecent.push(after?.recent?.served ?? 0);
      streamed.push(after?.streamed ?? 0);
      rss.push(daemon.peakRssMB());
      return result.seconds;
    } finally {
      await daemon?.close();
    }
  };
  const viaNginx = async () => {
    const result = await getAll(nginx!.url, requests());
    expectHitsAndMisses(result, hits, sizes.lookups, 'nginx');
    return result.seconds;
  };

  try {
    log(`large cache: ${sizes.lookups} GETs against ${label} paths, proxy vs nginx`);
    const sides = [...(stack ? [viaProxy] : []), ...(nginx ? [viaNginx] : [])];
    const samples = await rotate(sizes.repetitions, sides);
    const sluice: Side = stack ? { samples: samples[0]! } : { unavailable: sluiceMissing! };
    const baseline: Side = nginx ? { samples: samples[stack ? 1 : 0]! } : { unavailable: nginxMissing! };
    const first = loads[0];
    const note = first
      ? `narinfo set: ${first.prefixes.toLocaleString('en-US')} prefixes, ${(first.bytes / 1e6).toFixed(2)} MB; ` +
        `loaded by a fresh daemon in ${first.seconds.toFixed(2)} s the first time (server index cold)` +
        (loads.length > 1
          ? `, ${median(loads.slice(1).map((l) => l.seconds)).toFixed(2)} s after (median)`
          : '') +
        // The seeded hits are not the slice's newest rows: they go to the server, every run.
        `; hits answered from the daemon's recent narinfos: ${fromRecent.join(', ')} of ${hits} per run` +
        `; batches answered over the narinfo stream: ${streamed.join(', ')} per run`
      : undefined;
    return [
      {
        scenario: `narinfo lookups against a cache of ${label} paths: ${sizes.lookups.toLocaleString('en-US')} distinct GETs, half hits (proxy → server vs nginx)`,
        unit: 's',
        sluice,
        baseline,
        target: `≤ 1 s for 10,000; ≤ 2× nginx`,
        met: (seconds, ratio) => seconds <= sizes.lookups / 10_000 && ratio !== undefined && ratio <= 2,
        ...(note ? { note } : {}),
      },
      {
        scenario: `memory: proxy peak RSS with the narinfo set of ${label} paths, after the lookups`,
        unit: 'MB',
        sluice: stack ? { samples: rss } : { unavailable: sluiceMissing! },
        target: '≤ 150 MB',
        met: (mb) => mb <= 150,
      },
    ];
  } finally {
    await nginx?.close();
    await stack?.close();
  }
}
