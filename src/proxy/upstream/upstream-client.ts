/**
 * The one module that talks HTTP to the Sluice server (and, without credentials, to upstream
 * caches): a keep-alive undici Pool per origin, timeouts, the cache token injected here and nowhere
 * else, retries on 5xx/429/network errors, and close. Requests whose answer is small and read
 * whole (narinfo lookups, the push's checks, uploads) go through a keep-alive node:http Agent
 * instead: Node's native parser made a lookup cost about half the CPU of undici's (~140 vs ~290 µs
 * each, more before undici's WASM parser warms up), and its write callbacks tell an upload when a
 * buffer may be reused.
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { written } from '../../nix/buffer-pool.js';
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
  /**
   * A factory, so that a retry can send the body again. A streamed body's chunk may be reused by
   * its maker once the next is asked for (`requestText` waits for the socket until then).
   */
  body?: () => AsyncIterable<Buffer> | string | Buffer;
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy>;
}

export type UpstreamResponse = Dispatcher.ResponseData;

/** A small answer, read whole: for `requestText`. */
export interface TextResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** What the retry loop needs of an answer of either kind. */
interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
}

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
  /** For `requestText`; its sockets are separate from the pool's. */
  private readonly agent: HttpAgent;
  private readonly target: { https: boolean; hostname: string; port: string };
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
    const https = url.protocol === 'https:';
    // `timeout` here closes a kept-alive socket that stayed idle this long.
    const agentOptions = { keepAlive: true, maxSockets: options.connections ?? 16, timeout: 30_000 };
    this.agent = https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
    this.target = { https, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port };
  }

  /**
   * Sends the request, retrying retryable statuses and network errors. Returns the last response
   * (whatever its status) with its body unread; throws when the last attempt failed on the network
   * or the signal aborted.
   */
  request(req: UpstreamRequest): Promise<UpstreamResponse> {
    return this.retrying(
      req,
      () => this.send(req),
      (response) => response.body.dump(),
    );
  }

  /**
   * The same request, retried the same way, with the answer's body read whole as text: for small
   * answers (narinfos, upload results). Throws as `request` does, and also when the answer broke off.
   */
  requestText(req: UpstreamRequest): Promise<TextResponse> {
    return this.retrying(
      req,
      () => this.sendText(req),
      async () => undefined,
    );
  }

  private async retrying<R extends Answer>(
    req: UpstreamRequest,
    send: () => Promise<R>,
    discard: (response: R) => Promise<unknown>,
  ): Promise<R> {
    const policy = { ...this.retryPolicy, ...req.retry };
    let refreshedToken = false;
    for (let attempt = 0; ; attempt++) {
      let reason: string;
      let retryAfterMs: number | undefined;
      try {
        const response = await send();
        if (response.statusCode === 401 && !refreshedToken && this.options.onUnauthorized) {
          refreshedToken = true;
          if (await this.options.onUnauthorized()) {
            await discard(response);
            attempt--;
            continue;
          }
          return response;
        }
        if (!isRetryableStatus(response.statusCode) || attempt >= policy.retries) return response;
        retryAfterMs = parseRetryAfter(response.headers['retry-after']);
        reason = `HTTP ${response.statusCode}`;
        await discard(response);
      } catch (e) {
        if (req.signal?.aborted || attempt >= policy.retries || !isRetryableError(e)) throw e;
        reason = describeNetworkError(e);
      }
      const delayMs = retryDelay(attempt, policy, retryAfterMs);
      this.options.onRetry?.({ method: req.method, path: req.path, attempt: attempt + 1, delayMs, reason });
      await sleep(delayMs, req.signal);
    }
  }

  /** The request's headers plus the current token. */
  private headers(req: UpstreamRequest): Record<string, string> {
    const headers: Record<string, string> = { ...req.headers };
    const token = this.options.token?.();
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  private send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const body = req.body?.();
    return this.pool.request({
      method: req.method,
      path: this.basePath + req.path,
      headers: this.headers(req),
      body: isWhole(body) ? body : Readable.from(body),
      signal: req.signal ?? null,
    });
  }

  private sendText(req: UpstreamRequest): Promise<TextResponse> {
    const body = req.body?.();
    const headers = this.headers(req);
    // A streamed body goes chunked: its size is known only once it is sent.
    if (isWhole(body) && body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const timeoutMs = this.options.headersTimeoutMs ?? 120_000;
    return new Promise((resolve, reject) => {
      const request = this.nodeRequest(
        req.path,
        {
          agent: this.agent,
          method: req.method,
          headers,
          timeout: timeoutMs,
          ...(req.signal ? { signal: req.signal } : {}),
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('error', reject);
          response.on('end', () => {
            resolve({ statusCode: response.statusCode ?? 0, headers: response.headers, text });
            // Answered before the body was all sent (a 401 or 413 the server gave at once): the
            // rest would be made and sent for nothing.
            if (!request.writableFinished) request.destroy();
          });
        },
      );
      request.on('error', reject);
      request.on('timeout', () =>
        request.destroy(
          Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' }),
        ),
      );
      if (isWhole(body)) request.end(body);
      else sendBody(request, body).catch((error: unknown) => request.destroy(error as Error));
    });
  }

  /**
   * A request on a connection of its own, its headers sent, for the caller to write a body into
   * over time and read the answer as it comes (the narinfo stream). Not retried: the caller owns it.
   */
  openDuplex(path: string, headers: Record<string, string>): ClientRequest {
    const request = this.nodeRequest(path, {
      agent: false,
      method: 'POST',
      headers: this.headers({ method: 'POST', path, headers }),
    });
    request.flushHeaders();
    return request;
  }

  /** A node:http(s) request to the server, `path` below the base URL. */
  private nodeRequest(
    path: string,
    options: Omit<RequestOptions, 'hostname' | 'port' | 'path'>,
    onResponse?: (response: IncomingMessage) => void,
  ): ClientRequest {
    const target = {
      ...options,
      hostname: this.target.hostname,
      port: this.target.port,
      path: this.basePath + path,
    };
    return (this.target.https ? httpsRequest : httpRequest)(target, onResponse);
  }

  async close(): Promise<void> {
    this.agent.destroy();
    await this.pool.close();
  }

  /** Drops every connection at once, aborting what is in flight. */
  async destroy(): Promise<void> {
    this.agent.destroy();
    await this.pool.destroy();
  }
}

/** A body given whole (or none), as opposed to one streamed chunk by chunk. */
function isWhole(
  body: ReturnType<NonNullable<UpstreamRequest['body']>> | undefined,
): body is string | Buffer | undefined {
  return body === undefined || typeof body === 'string' || Buffer.isBuffer(body);
}

/** Writes each chunk once the socket is done with the one before, so its maker may reuse buffers. */
async function sendBody(request: ClientRequest, body: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of body) await written(request, chunk);
  request.end();
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
