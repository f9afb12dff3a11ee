/**
 * `startServer(config)`: opens the data directory (keys, SQLite metadata, NAR files), wires the
 * token exchange and the cache protocol, listens. `close()` stops accepting connections and lets
 * requests in flight (uploads included) finish before the database closes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import type { Config } from './config.js';
import { dataPaths } from './data-dir.js';
import {
  createExchange,
  createTokenHandler,
  loadOrCreateTokenKey,
  tokenKeyPath,
  type CacheGrant,
  type CiIdentity,
  type ExchangeOptions,
} from './exchange/index.js';
import type { Access } from './http/auth.js';
import { NarInfoSigner } from './http/narinfo-signer.js';
import { createRouter } from './http/router.js';
import { UploadSlots } from './http/upload-slots.js';
import { createLogger, type Logger } from './log.js';
import { ServerMetrics } from './metrics.js';
import { ReadRecorder } from './retention/access.js';
import type { CollectOptions, GcReport } from './retention/collector.js';
import { startGcScheduler } from './retention/scheduler.js';
import { readCovers } from './retention/slices.js';
import { defaultKeyName, loadOrCreateSigningKey } from './signing-key.js';
import { FsBlobStore } from './storage/fs-blob-store.js';
import type { WriterIdentity } from './storage/metadata-store.js';
import { SqliteMetadataStore } from './storage/sqlite-metadata-store.js';
import { grantRanking } from './union-read.js';

export interface StartOptions {
  /** Where JSON logs go (default: stdout). */
  logDestination?: DestinationStream;
  exchange?: ExchangeOptions;
  /** The server's clock in ms (tests move it to age what was pushed). */
  now?: () => number;
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
  const signingKey = await loadOrCreateSigningKey(dataDir, defaultKeyName(config.publicUrl));
  const { key: tokenKey } = await loadOrCreateTokenKey(tokenKeyPath(dataDir));
  const blobs = await FsBlobStore.open(paths.nars);
  const meta = new SqliteMetadataStore(paths.database);
  const metrics = new ServerMetrics();
  const now = options.now ?? Date.now;
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
  const exchange = createExchange(config, tokenKey, options.exchange);
  const publicSlices = exchange.publicSlices();
  const isPublic = (slice: string) => publicSlices.some((pattern) => readCovers(pattern, slice));

  let cacheUrl = config.publicUrl ?? '';
  let tokenHandler: ReturnType<typeof createTokenHandler> | undefined;
  const server: Server = createServer();
  const router = createRouter({
    blobs,
    meta,
    narinfoSigner: new NarInfoSigner(signingKey),
    narLimits: {
      maxNarSize: config.maxNarSize,
      maxRatio: config.uploads.maxCompressionRatio,
      maxDecompressionMemory: config.uploads.maxDecompressionMemory,
    },
    uploadSlots: new UploadSlots(config.uploads),
    bodyIdleTimeoutMs: config.uploads.bodyIdleTimeoutMs,
    metrics,
    log,
    now,
    reads: new ReadRecorder(meta, now, (config.gcGraceSeconds * 1000) / 4),
    verifyToken: async (token) => accessFromGrant(await exchange.verifyCacheToken(token)),
    isPublic,
    publicReads: publicSlices.length > 0,
    // Made on first use: the cache URL is known only once listening (port 0).
    tokenHandler: (req, res) =>
      (tokenHandler ??= createTokenHandler({ exchange, publicKeys: [signingKey.publicKey.text], cacheUrl }))(
        req,
        res,
      ),
    // public_reads tells the Action whether a job without an ID token (a fork's pull request) can
    // still read: only when some slice is public.
    health: () => ({
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
        await meta.close();
        log.info('sluice server stopped');
      })()),
  };
}
