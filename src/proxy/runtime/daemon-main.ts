/**
 * The daemon's lifecycle: read the config, wire the parts, listen, announce readiness in
 * `<stateDir>/ready.json`, and shut down cleanly on `/_sluice/shutdown` or SIGTERM.
 */
import { mkdir, rm } from 'node:fs/promises';
import { removeSecretFiles } from './secret-files.js';
import type { DestinationStream } from 'pino';
import {
  parseDaemonListen,
  parseExpiry,
  readDaemonConfig,
  type DaemonConfig,
} from '../../contracts/daemon-config.js';
import { writeReadyFile } from '../../contracts/ready-file.js';
import { createLogger, Secrets, type Logger } from '../report/daemon-log.js';
import { Pinner } from '../push/pinner.js';
import { PushQueue } from '../push/push-queue.js';
import { CacheRoutes } from '../pull/nix-routes.js';
import { startPackDaemon } from './pack-daemon.js';
import { startProxyServer } from './proxy-server.js';
import { RequestGate } from './request-gate.js';
import { Stats } from '../report/stats.js';
import { LocalStore } from '../push/local-store.js';
import { systemClock, type Clock } from '../upstream/clock.js';
import { TokenKeeper } from '../upstream/token-keeper.js';
import { Upstream } from '../upstream/upstream-client.js';

export interface DaemonOptions {
  /** Environment of the `nix` commands the daemon runs. */
  env?: NodeJS.ProcessEnv;
  /** Where log lines go (stdout by default). */
  logDestination?: DestinationStream;
  /** Called after `/_sluice/shutdown` closed the daemon. */
  onShutdown?: () => void;
  /** The time the token handling reads (tests move it; the system clock otherwise). */
  clock?: Clock;
  /** The daemon's bundle, which GitHub cache mode starts again for its restore (pack-daemon.ts). */
  restoreScript?: string;
}

export interface Daemon {
  port: number;
  url: string;
  stats: Stats;
  log: Logger;
  /** Stops everything: server, pushes in flight, token refresh, connections. Idempotent. */
  close(): Promise<void>;
}

export async function startDaemon(config: DaemonConfig, options: DaemonOptions = {}): Promise<Daemon> {
  if (config.pack) {
    const { restoreScript } = options;
    if (!restoreScript)
      throw new Error(
        "GitHub cache mode runs its restore from the daemon's bundle: no bundle path was given",
      );
    return startPackDaemon({ ...config, pack: config.pack }, { ...options, restoreScript });
  }
  const secrets = new Secrets();
  secrets.add(config.token);
  secrets.add(config.auth.cachePrefix);
  secrets.add(config.auth.controlSecret);
  const log = createLogger(secrets, options.logDestination);
  const { host, port } = parseDaemonListen(config.listen);
  await mkdir(config.stateDir, { recursive: true });

  let queue: PushQueue | undefined;
  const stats = new Stats(config.read, config.write, () => queue?.queued ?? 0);
  const tokens = new TokenKeeper(
    {
      token: config.token,
      expiresAt: config.tokenExpiresAt === null ? Infinity : parseExpiry(config.tokenExpiresAt),
    },
    {
      server: config.server,
      audience: config.audience,
      idTokenRequest: config.idTokenRequest,
      secrets,
      stats,
      log,
      ...(options.clock ? { clock: options.clock } : {}),
    },
  );
  const server = new Upstream(config.server, {
    token: () => tokens.current(),
    onUnauthorized: () => tokens.refresh(),
    onRetry: (info) => log.info(info, 'retrying a request to the cache server'),
  });
  const store = new LocalStore(options.env);
  const routes = new CacheRoutes(server, stats, log, options.clock ?? systemClock);
  if (config.push.enabled) {
    queue = new PushQueue({
      config: config.push,
      server,
      store,
      stats,
      log,
      onPushed: (hashPart) => routes.forgetMiss(hashPart),
    });
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info({ stats: stats.toJSON() }, 'shutting down');
      tokens.stop();
      await queue?.close();
      await routes.close();
      await Promise.all([proxy.close(), server.destroy()]);
      await removeSecretFiles(config.secretFiles);
      log.flush();
    })());

  const proxy = await startProxyServer(
    host,
    port,
    routes,
    {
      stats,
      queue,
      log,
      health: () => ({
        ok: true,
        pid: process.pid,
        port: proxy.port,
        pushing: queue !== undefined,
        memory: process.memoryUsage(),
        tokenExpiresAt: Number.isFinite(tokens.expiresAt) ? new Date(tokens.expiresAt).toISOString() : null,
      }),
      shutdown: () => void close().then(options.onShutdown),
      ...(config.pin && queue ? { pinner: new Pinner(server, config.pin, stats, log) } : {}),
    },
    new RequestGate(config.auth),
    log,
  );
  tokens.start();
  routes.start();
  await writeReadyFile(config.stateDir, { pid: process.pid, port: proxy.port });
  log.info(
    {
      port: proxy.port,
      server: config.server,
      pushing: config.push.enabled,
      compression: config.push.compression,
    },
    'listening',
  );
  return { port: proxy.port, url: `http://127.0.0.1:${proxy.port}`, stats, log, close };
}

/** The bundle's entry: `node dist/proxy/index.js <config.json>`; `bundle` is that index.js. */
export async function run(configPath = process.argv[2], bundle?: string): Promise<void> {
  if (!configPath) {
    process.stderr.write('usage: sluice-proxy <config.json>\n');
    process.exit(2);
  }
  const failed = async (e: unknown, secretFiles: string[]): Promise<never> => {
    process.stdout.write(
      `${JSON.stringify({ level: 50, msg: 'daemon failed to start', err: (e as Error).message })}\n`,
    );
    await removeSecretFiles(secretFiles);
    process.exit(1);
  };
  let config: DaemonConfig;
  try {
    config = await readDaemonConfig(configPath);
  } catch (e) {
    return failed(e, [configPath]);
  } finally {
    // The config holds the cache token and the job's secrets: from here they live in memory only.
    await rm(configPath, { force: true }).catch(() => undefined);
  }
  let daemon: Daemon;
  try {
    daemon = await startDaemon(config, {
      onShutdown: () => process.exit(0),
      ...(bundle ? { restoreScript: bundle } : {}),
    });
  } catch (e) {
    return failed(e, config.secretFiles);
  }
  const stop = (signal: string): void => {
    daemon.log.info({ signal }, 'signal received');
    void daemon.close().then(() => process.exit(0));
  };
  // A stray error must not take the substituter away mid-job: log it and keep serving.
  process.on('uncaughtException', (e) =>
    daemon.log.error({ err: e.message, stack: e.stack }, 'uncaught exception'),
  );
  process.on('unhandledRejection', (e) => daemon.log.error({ err: String(e) }, 'unhandled rejection'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
