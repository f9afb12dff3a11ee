/**
 * Keeps the cache token fresh: before it expires, ask the runner for a new OIDC ID token (the call
 * `core.getIDToken` makes) and exchange it at the server. A failed refresh keeps the old token,
 * records the error and tries again later.
 */
import { request } from 'undici';
import type { IdTokenRequest } from '../../contracts/daemon-config.js';
import { parseTokenExchangeResponse, TOKEN_EXCHANGE_PATH } from '../../contracts/server-api.js';
import type { Logger, Secrets } from '../report/daemon-log.js';
import { systemClock, type Clock } from './clock.js';
import type { Stats } from '../report/stats.js';

export interface CacheToken {
  /** null: anonymous, nothing to refresh. */
  token: string | null;
  /** Unix milliseconds. */
  expiresAt: number;
}

export interface TokenKeeperOptions {
  server: string;
  audience: string;
  idTokenRequest?: IdTokenRequest;
  secrets: Secrets;
  stats: Stats;
  log: Logger;
  clock?: Clock;
}

const REQUEST_TIMEOUT_MS = 30_000;
/** Refresh this long before expiry at most; a quarter of the remaining lifetime for short tokens. */
const MAX_REFRESH_LEAD_MS = 120_000;
const MAX_FAILED_RETRY_MS = 30_000;
/**
 * Least time between two refreshes that succeeded: a server whose tokens are already (nearly)
 * expired by this runner's clock (a clock behind by more than a token's life, or a hostile server)
 * would otherwise have the keeper ask for an ID token and an exchange again at once, for ever.
 */
const MIN_REFRESH_INTERVAL_MS = 10_000;

/** How long to wait before refreshing a token that expires in `remainingMs`. */
export function refreshDelay(remainingMs: number): number {
  if (remainingMs <= 0) return 0;
  return remainingMs - Math.min(MAX_REFRESH_LEAD_MS, remainingMs / 4);
}

/** One request with a bearer token; its body, or an error naming `what` on a non-200 answer. */
async function requestText(
  url: URL | string,
  method: 'GET' | 'POST',
  bearer: string,
  what: string,
): Promise<string> {
  const response = await request(url, {
    method,
    headers: { authorization: `Bearer ${bearer}`, accept: 'application/json' },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.body.text();
  if (response.statusCode !== 200) {
    throw new Error(`${what} answered HTTP ${response.statusCode}: ${text.slice(0, 200).trim()}`);
  }
  return text;
}

export class TokenKeeper {
  private token: CacheToken;
  private cancelTimer: (() => void) | undefined;
  private readonly clock: Clock;
  private inFlight: Promise<boolean> | undefined;
  private stopped = false;

  constructor(
    initial: CacheToken,
    private readonly options: TokenKeeperOptions,
  ) {
    this.token = initial;
    this.clock = options.clock ?? systemClock;
    options.secrets.add(initial.token);
    options.secrets.add(options.idTokenRequest?.token);
  }

  current(): string | undefined {
    return this.token.token ?? undefined;
  }

  get expiresAt(): number {
    return this.token.expiresAt;
  }

  get canRefresh(): boolean {
    return this.token.token !== null && this.options.idTokenRequest !== undefined;
  }

  /** Schedules refreshes for as long as the daemon runs. */
  start(): void {
    if (this.canRefresh) this.schedule(refreshDelay(this.token.expiresAt - this.clock.now()));
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
  }

  /** Gets a new token now (one refresh at a time); true when the token changed. */
  refresh(): Promise<boolean> {
    if (!this.canRefresh) return Promise.resolve(false);
    this.inFlight ??= this.doRefresh().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.cancelTimer?.();
    this.cancelTimer = this.clock.setTimer(() => void this.refresh(), delayMs);
  }

  private async doRefresh(): Promise<boolean> {
    const { log, stats } = this.options;
    try {
      const fresh = await this.exchange(await this.requestIdToken());
      this.options.secrets.add(fresh.token);
      this.token = fresh;
      const remaining = fresh.expiresAt - this.clock.now();
      log.info({ expiresAt: new Date(fresh.expiresAt).toISOString() }, 'cache token refreshed');
      if (remaining < MIN_REFRESH_INTERVAL_MS)
        log.warn(
          {
            expiresAt: new Date(fresh.expiresAt).toISOString(),
            now: new Date(this.clock.now()).toISOString(),
          },
          "the server's new cache token is already expired by this runner's clock, or nearly (check the server's clock): next refresh in 10 s",
        );
      this.schedule(Math.max(MIN_REFRESH_INTERVAL_MS, refreshDelay(remaining)));
      return true;
    } catch (e) {
      const message = `token refresh failed: ${(e as Error).message}`;
      stats.error(message);
      log.warn({ err: message }, 'token refresh failed; keeping the current token');
      const remaining = this.token.expiresAt - this.clock.now();
      this.schedule(Math.min(MAX_FAILED_RETRY_MS, Math.max(1000, remaining / 2)));
      return false;
    }
  }

  private async requestIdToken(): Promise<string> {
    const { url, token } = this.options.idTokenRequest!;
    const target = new URL(url);
    target.searchParams.set('audience', this.options.audience);
    const text = await requestText(target, 'GET', token, 'the ID token request endpoint');
    let json: { value?: unknown } | null = null;
    try {
      json = JSON.parse(text) as { value?: unknown } | null;
    } catch {
      // reported below
    }
    if (typeof json !== 'object' || json === null)
      throw new Error('the ID token request endpoint did not answer a JSON object');
    if (typeof json.value !== 'string' || json.value === '') {
      throw new Error('the ID token request endpoint answered no token (no "value")');
    }
    this.options.secrets.add(json.value);
    return json.value;
  }

  private async exchange(idToken: string): Promise<CacheToken> {
    const url = `${this.options.server}${TOKEN_EXCHANGE_PATH}`;
    const answer = parseTokenExchangeResponse(await requestText(url, 'POST', idToken, 'the token exchange'));
    return { token: answer.token, expiresAt: Date.parse(answer.expiresAt) };
  }
}
