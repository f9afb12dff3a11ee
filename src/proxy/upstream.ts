/**
 * The one module that talks HTTP to the Sluice server (and, without credentials, to upstream
 * caches): a keep-alive undici Pool per origin, timeouts, the cache token injected here and nowhere
 * else, retries on 5xx/429/network errors, and close.
 */
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import {
  DEFAULT_RETRY_POLICY,
  isRetryableStatus,
  parseRetryAfter,
  retryDelay,
  sleep,
  type RetryPolicy,
} from './retry.js';

export interface UpstreamOptions {
  /** The bearer token to send; absent for upstream caches, which must never see it. */
  token?: () => string | undefined;
  /** Called once on a 401: may get a fresh token (true) so the request is tried again. */
  onUnauthorized?: () => Promise<boolean>;
  retry?: Partial<RetryPolicy>;
  connections?: number;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /** Called before each retry, for logging. */
  onRetry?: (info: {
    method: string;
    path: string;
    attempt: number;
    delayMs: number;
    reason: string;
  }) => void;
}

export interface UpstreamRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST';
  /** Path below the base URL, starting with `/`. */
  path: string;
  headers?: Record<string, string>;
  /** A factory, so that a retry can send the body again. */
  body?: () => Readable | string | Buffer;
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy>;
}

export type UpstreamResponse = Dispatcher.ResponseData;

/** An answer that is not what the caller needed, naming the request and the status. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export class Upstream {
  readonly origin: string;
  private readonly basePath: string;
  private readonly pool: Pool;
  private readonly retryPolicy: RetryPolicy;

  constructor(
    readonly baseUrl: string,
    private readonly options: UpstreamOptions = {},
  ) {
    const url = new URL(baseUrl);
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.retryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.pool = new Pool(this.origin, {
      connections: options.connections ?? 16,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      headersTimeout: options.headersTimeoutMs ?? 120_000,
      bodyTimeout: options.bodyTimeoutMs ?? 120_000,
    });
  }

  /**
   * Sends the request, retrying retryable statuses and network errors. Returns the last response
   * (whatever its status) with its body unread; throws when the last attempt failed on the network
   * or the signal aborted.
   */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const policy = { ...this.retryPolicy, ...req.retry };
    let refreshedToken = false;
    for (let attempt = 0; ; attempt++) {
      let reason: string;
      let retryAfterMs: number | undefined;
      try {
        const response = await this.send(req);
        if (response.statusCode === 401 && !refreshedToken && this.options.onUnauthorized) {
          refreshedToken = true;
          if (await this.options.onUnauthorized()) {
            await response.body.dump();
            attempt--;
            continue;
          }
          return response;
        }
        if (!isRetryableStatus(response.statusCode) || attempt >= policy.retries) return response;
        retryAfterMs = parseRetryAfter(response.headers['retry-after']);
        reason = `HTTP ${response.statusCode}`;
        await response.body.dump();
      } catch (e) {
        if (req.signal?.aborted || attempt >= policy.retries || !isRetryableError(e)) throw e;
        reason = describeNetworkError(e);
      }
      const delayMs = retryDelay(attempt, policy, retryAfterMs);
      this.options.onRetry?.({ method: req.method, path: req.path, attempt: attempt + 1, delayMs, reason });
      await sleep(delayMs, req.signal);
    }
  }

  private send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { ...req.headers };
    const token = this.options.token?.();
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return this.pool.request({
      method: req.method,
      path: this.basePath + req.path,
      headers,
      body: req.body?.() ?? null,
      signal: req.signal ?? null,
    });
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /** Drops every connection at once, aborting what is in flight. */
  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}

/** Network errors are worth another try; an error marked `retryable: false` (a bad body) is not. */
function isRetryableError(error: unknown): boolean {
  return (error as { retryable?: unknown } | null)?.retryable !== false;
}

/** A network error's message with its cause (undici wraps the socket error), never headers. */
export function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  const code = (error as { code?: string }).code;
  const causeText = cause instanceof Error ? `: ${cause.message}` : '';
  return `${code ? `${code} ` : ''}${error.message}${causeText}`;
}
