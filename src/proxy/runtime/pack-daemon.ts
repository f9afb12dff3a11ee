/**
 * The daemon in GitHub cache mode: listens at once, restores the newest pack for the job's keys
 * in the background (lookups wait for it, nothing else does), verifies it as it is read, collects
 * what the job builds, and writes the new pack when the post step asks.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { removeSecretFiles } from './secret-files.js';
import { join } from 'node:path';
import type { DestinationStream } from 'pino';
import { parseSecretKey } from '../../nix/signing.js';
import { parseDaemonListen, type DaemonConfig, type PackConfig } from '../../contracts/daemon-config.js';
import { createLogger, Secrets, type Logger } from '../report/daemon-log.js';
import { RequestGate } from './request-gate.js';
import { startProxyServer } from './proxy-server.js';
import { Stats } from '../report/stats.js';
import { LocalStore } from '../push/local-store.js';
import { restoreInChild, type RestoreRequest, type RunningRestore } from '../pack/restore-child.js';
import { streamRestore } from '../pack/stream-restore.js';
import { BuiltCollector } from '../pack/collector.js';
import { newPack } from '../pack/new-pack.js';
import { PackReader } from '../pack/reader.js';
import { PACK_DIR, PACK_NARS, type RestoreReport } from '../../contracts/pack-api.js';
import { PackRoutes } from '../pack/routes.js';

export interface PackDaemonOptions {
  env?: NodeJS.ProcessEnv;
  logDestination?: DestinationStream;
  onShutdown?: () => void;
  /**
   * The daemon's bundle: @actions/cache's restore runs in a child process started from it, with a
   * heap of its own (restore-child.ts). Never in the daemon's own process: it would put the cache
   * service's token in the daemon's environment.
   */
  restoreScript: string;
}

export interface PackDaemon {
  port: number;
  url: string;
  stats: Stats;
  log: Logger;
  close(): Promise<void>;
}

/**
 * Restores the pack: the reader comes as soon as the index has been downloaded (streamed out of
 * the archive as it lands), or, if that did not work, from what @actions/cache extracted. The
 * report says how it went. Never throws.
 */
async function restore(
  pack: PackConfig,
  report: RestoreReport,
  log: Logger,
  start: (request: RestoreRequest) => RunningRestore,
): Promise<PackReader | undefined> {
  const started = Date.now();
  const seconds = (): number => (Date.now() - started) / 1000;
  const dir = join(pack.dir, 'restore');
  const tempDir = join(pack.dir, 'download');
  try {
    await mkdir(dir, { recursive: true });
    await mkdir(tempDir, { recursive: true });
    let done = false;
    const running = start({ dir, key: pack.restoreKey, restoreKeys: pack.restoreKeys, tempDir });
    if (running.pid !== undefined) log.info({ pid: running.pid }, 'restoring the pack in a child process');
    const restoring = running.outcome.finally(() => (done = true));
    const streamed = await streamRestore(
      tempDir,
      () => done,
      join(pack.dir, 'stream'),
      (message) =>
        log.warn({ err: message }, 'reading the pack while it downloads failed; reading it once extracted'),
    );
    if (streamed) {
      const { reader } = streamed;
      // The NARs are being read out of the download: tar need not write them a second time. Set
      // only now, so that a restore the stream could not read still extracts them for the fallback
      // below; a download that ends before this extracts them too, unused.
      if (!done) running.exclude(`${PACK_DIR}/${PACK_NARS}`);
      Object.assign(report, { outcome: 'restored', paths: reader.index.entries.length, bytes: reader.bytes });
      report.indexSeconds = seconds();
      log.info({ report }, 'pack index read; its NARs follow');
      void restoring.then((outcome) => {
        report.seconds = seconds();
        if (outcome.ok) report.key = outcome.key;
        else {
          const why = 'error' in outcome ? outcome.error : 'no pack';
          reader.fail(`the pack's download failed: ${why}`);
          Object.assign(report, { outcome: 'failed', error: why });
        }
      });
      void streamed.finished.then(() => watchCorruption(reader, report, log));
      return reader;
    }
    const outcome = await restoring;
    report.seconds = seconds();
    if (!outcome.ok) {
      if (outcome.missing) report.outcome = 'none';
      else Object.assign(report, { outcome: 'failed', error: outcome.error });
      log.info({ report }, 'no pack restored');
      return undefined;
    }
    report.key = outcome.key;
    const reader = await PackReader.open(dir);
    Object.assign(report, { outcome: 'restored', paths: reader.index.entries.length, bytes: reader.bytes });
    log.info({ report }, 'pack restored');
    void reader.verify().then(() => watchCorruption(reader, report, log));
    return reader;
  } catch (e) {
    Object.assign(report, { outcome: 'failed', error: (e as Error).message, seconds: seconds() });
    log.warn({ report }, 'pack restore failed');
    return undefined;
  }
}

function watchCorruption(reader: PackReader, report: RestoreReport, log: Logger): void {
  if (!reader.corrupt) return;
  report.corrupt = reader.corrupt;
  log.warn({ err: reader.corrupt }, 'restored pack is corrupt');
}

export async function startPackDaemon(
  config: DaemonConfig & { pack: PackConfig },
  options: PackDaemonOptions,
): Promise<PackDaemon> {
  const secrets = new Secrets();
  secrets.add(config.pack.signingKey);
  secrets.add(config.pack.cacheEnv.ACTIONS_RUNTIME_TOKEN);
  secrets.add(config.auth.cachePrefix);
  secrets.add(config.auth.controlSecret);
  const log = createLogger(secrets, options.logDestination);
  const { host, port } = parseDaemonListen(config.listen);
  await mkdir(config.stateDir, { recursive: true });
  const key = parseSecretKey(config.pack.signingKey);
  const store = new LocalStore(options.env);
  const queued = { count: (): number => 0 };
  const stats = new Stats([], null, () => queued.count());
  const collector = new BuiltCollector(store, stats, log);
  queued.count = () => collector.queued;
  const report: RestoreReport = { outcome: 'pending' };
  let reader: PackReader | undefined;
  let running: RunningRestore | undefined;
  const start = (request: RestoreRequest): RunningRestore =>
    (running = restoreInChild(options.restoreScript, request, config.pack.cacheEnv));
  const restoring = restore(config.pack, report, log, start).then((r) => (reader = r));
  const routes = new PackRoutes(restoring, key, stats, log);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info({ stats: stats.toJSON() }, 'shutting down');
      running?.stop();
      routes.close();
      await proxy.close();
      await removeSecretFiles(config.secretFiles);
      log.flush();
    })());
  const proxy = await startProxyServer(
    host,
    port,
    routes,
    {
      stats,
      queue: collector,
      log,
      pack: (body) =>
        newPack(
          {
            dir: config.pack.dir,
            push: config.push,
            store,
            stats,
            log,
            collector,
            routes,
            restored: () => reader,
            restore: () => ({ ...report, ...(reader?.corrupt ? { corrupt: reader.corrupt } : {}) }),
          },
          body,
        ),
      health: () => ({
        ok: true,
        pid: process.pid,
        port: proxy.port,
        pushing: config.push.enabled,
        tokenExpiresAt: null,
        memory: process.memoryUsage(),
      }),
      shutdown: () => void close().then(options.onShutdown),
    },
    new RequestGate(config.auth),
    log,
  );
  const ready = join(config.stateDir, 'ready.json');
  await writeFile(`${ready}.tmp`, JSON.stringify({ pid: process.pid, port: proxy.port }));
  await rename(`${ready}.tmp`, ready);
  log.info({ port: proxy.port, backend: 'github' }, 'listening');
  return { port: proxy.port, url: `http://127.0.0.1:${proxy.port}`, stats, log, close };
}
