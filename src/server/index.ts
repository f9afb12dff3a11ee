/**
 * `startServer(config)`: opens the keys and the stores (the data directory, or PostgreSQL and a bucket), wires the
 * token exchange and the cache protocol, listens. `close()` stops accepting connections and lets
 * requests in flight (uploads included) finish before the database closes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import type { ServerHealth } from '../contracts/server-api.js';
import type { Config } from './config/config-schema.js';
import { dataPaths } from './data-dir.js';
import { createExchange, type CacheGrant, type CiIdentity, type ExchangeOptions } from './exchange/index.js';
import type { Access } from './http/auth.js';
import { CacheService } from './cache/cache-service.js';
import { NarInfoSigner } from './cache/narinfo-signer.js';
import { VerifyPool } from './cache/verify-pool.js';
import { NarLinkSigner } from './cache/nar-link-signer.js';
import { createRequestGuard } from './http/rate-limit.js';
import { createRouter } from './http/router.js';
import { UploadSlots } from './http/upload-slots.js';
import { createTokenHandler } from './http/token-handler.js';
import { createLogger, type Logger } from './server-log.js';
import { ServerMetrics } from './metrics.js';
import { loadServerKeys } from './keys.js';
import type { WriterIdentity } from './storage/metadata-store.js';
import { openStorage } from './storage/open-storage.js';
import { grantRanking } from './cache/union-read.js';
import { ReadRecorder } from './retention/access.js';
import type { CollectOptions, GcReport } from './retention/collector.js';
import { startGcScheduler } from './retention/scheduler.js';
import { readCovers } from './slices/pull-request-slices.js';

export interface StartOptions {
  /** Where JSON logs go (default: stdout). */
  logDestination?: DestinationStream;
  exchange?: ExchangeOptions;
  /** The threads that verify uploads (default: sized to the machine's cores); closed with the server. */
  verifiers?: VerifyPool;
  /** Retention's clock in ms: access times, pushes, collections (tests move it to age what was pushed). */
  clock?: () => number;
  /** Test seam for the collector (see CollectorDeps.beforeBlobDelete). */
  beforeBlobDelete?: (key: string) => Promise<void>;
}

export interface RunningServer {
  url: string;
  /** `name:base64`, for `trusted-public-keys`. */
  publicKey: string;
  dataDir: string;
  log: Logger;
  /** Runs a garbage collection now (as the schedule does; one at a time). */
  collectGarbage(options?: CollectOptions): Promise<GcReport>;
  close(): Promise<void>;
}

function writerIdentity(grant: CacheGrant): WriterIdentity {
  if (grant.kind !== 'ci') return {};
  const id = grant.identity as CiIdentity;
  return {
    issuer: id.issuer,
    repository: id.repository,
    repositoryId: id.repository_id,
    repositoryOwnerId: id.repository_owner_id,
    ref: id.ref,
    workflow: id.workflow,
    runId: id.run_id,
    sha: id.sha,
  };
}

function accessFromGrant(grant: CacheGrant): Omit<Access, 'authenticated' | 'canRead'> {
  return {
    grant,
    rank: grantRanking(grant),
    write: grant.write,
    bindWrite: grant.bindWrite === true,
    identity: writerIdentity(grant),
  };
}

function urlOf(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const log = createLogger(options.logDestination);
  const paths = dataPaths(config.data);
  const dataDir = paths.root;
  const { signingKey, tokenKey, exposedKeyFiles } = await loadServerKeys(config, dataDir);
  for (const file of exposedKeyFiles)
    log.warn({ file }, 'key file is readable by other users than its owner: chmod 600 it');
  const storage = await openStorage(config, paths, log);
  const { blobs, meta } = storage;
  const metrics = new ServerMetrics();
  const now = options.clock ?? Date.now;
  const gc = startGcScheduler(
    {
      blobs,
      meta,
      config,
      now,
      ...(options.beforeBlobDelete ? { beforeBlobDelete: options.beforeBlobDelete } : {}),
    },
    config.gcIntervalSeconds,
    metrics,
    log,
  );
  const exchange = createExchange(config, tokenKey, { ...options.exchange, store: meta });
  const publicSlices = exchange.publicSlices();
  const isPublic = (slice: string) => publicSlices.some((pattern) => readCovers(pattern, slice));

  let cacheUrl = config.publicUrl ?? '';
  let tokenHandler: ReturnType<typeof createTokenHandler> | undefined;
  const server: Server = createServer();
  const verifiers = options.verifiers ?? new VerifyPool();
  const cache = new CacheService({
    blobs,
    meta,
    narinfoSigner: new NarInfoSigner(signingKey),
    ...(storage.s3?.config.presignedDownloads
      ? {
          narRedirect: (key: string, ttlSeconds: number) =>
            storage.s3!.store.presignedGetUrl(key, ttlSeconds),
          narRedirectTtlSeconds: storage.s3.config.presignTtlSeconds,
        }
      : {}),
    ...(config.blobs.type === 'fs' && config.blobs.xAccelRedirect !== undefined
      ? { narAccelPrefix: config.blobs.xAccelRedirect }
      : {}),
    narLimits: {
      maxNarSize: config.maxNarSize,
      maxRatio: config.uploads.maxCompressionRatio,
      maxDecompressionMemory: config.uploads.maxDecompressionMemory,
    },
    verifiers,
    metrics,
    log,
    now,
    reads: new ReadRecorder(meta, now, (config.gcGraceSeconds * 1000) / 4),
  });
  const router = createRouter({
    cache,
    uploadSlots: new UploadSlots(config.uploads),
    bodyIdleTimeoutMs: config.uploads.bodyIdleTimeoutMs,
    metrics,
    log,
    verifyToken: async (token) => accessFromGrant(await exchange.verifyCacheToken(token)),
    verifyGrant: async (grant) => {
      await exchange.checkGrant(grant);
      return accessFromGrant(grant);
    },
    narLinkSigner: new NarLinkSigner(tokenKey, options.exchange?.now),
    isPublic,
    publicReads: publicSlices.length > 0,
    guard: createRequestGuard(config.rateLimits, config.trustProxy, options.exchange?.now, (limit) =>
      metrics.rateLimited.inc({ limit }),
    ),
    // Made on first use: the cache URL is known only once listening (port 0).
    tokenHandler: (req, res) =>
      (tokenHandler ??= createTokenHandler({ exchange, publicKeys: [signingKey.publicKey.text], cacheUrl }))(
        req,
        res,
      ),
    // public_reads tells the Action whether a job without an ID token (a fork's pull request) can
    // still read: only when some slice is public.
    health: (): ServerHealth => ({
      status: 'ok',
      public_key: signingKey.publicKey.text,
      public_keys: [signingKey.publicKey.text],
      public_reads: publicSlices.length > 0,
    }),
  });
  let stopping = false;
  const handle = (req: Parameters<typeof router>[0], res: Parameters<typeof router>[1]) => {
    // Draining: answer, then let the keep-alive connection go instead of waiting for its timeout.
    if (stopping) res.setHeader('connection', 'close');
    res.on('finish', () => {
      if (stopping) setImmediate(() => server.closeIdleConnections());
    });
    void router(req, res);
  };
  server.on('request', handle);
  // With a 'checkContinue' listener Node leaves the 100 Continue to us: handlers send it only once
  // the token and the declared size passed, so a refused upload's body is never sent.
  server.on('checkContinue', handle);

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolveListen();
    });
  }).catch(async (error: unknown) => {
    await gc.stop();
    await storage.close();
    throw error;
  });
  const url = urlOf(server.address() as AddressInfo);
  cacheUrl ||= url;
  log.info({ url, dataDir, publicKey: signingKey.publicKey.text }, 'sluice server listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    publicKey: signingKey.publicKey.text,
    dataDir,
    log,
    collectGarbage: (collectOptions) => gc.run(collectOptions),
    close: () =>
      (closing ??= (async () => {
        stopping = true;
        await gc.stop();
        await new Promise<void>((done) => {
          server.close(() => done());
          server.closeIdleConnections();
        });
        await verifiers.close();
        await storage.close();
        log.info('sluice server stopped');
      })()),
  };
}
