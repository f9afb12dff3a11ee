/**
 * When and how long to wait before trying a request again: exponential backoff with full jitter on
 * 5xx, 429 and network errors, and the server's `Retry-After` honoured when it says more.
 */

export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** A `Retry-After` longer than this is cut down to it, so one answer cannot stall a drain. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  retries: 5,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 30_000,
};

/**
 * For what Nix waits on (lookups, NAR links and downloads, the narinfo set): two more tries, soon.
 * A server that stays down is then answered as a miss, and Nix builds.
 */
export const PULL_RETRY: Partial<RetryPolicy> = { retries: 2, maxDelayMs: 1_000, maxRetryAfterMs: 2_000 };

/**
 * 429 and 5xx are worth another try; 501 and 505 say the request itself is wrong, and 507 that the
 * server's disk is full, which the next seconds will not change (and the upload would be sent again).
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505 && status !== 507);
}

/** `Retry-After` as delta-seconds or an HTTP date, in milliseconds from `now`; undefined if absent or bad. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The wait before retry number `attempt` (0-based). */
export function retryDelay(
  attempt: number,
  policy: RetryPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  const backoff = Math.round(random() * ceiling);
  if (retryAfterMs === undefined) return backoff;
  return Math.max(backoff, Math.min(retryAfterMs, policy.maxRetryAfterMs));
}

/** Resolves after `ms`, or rejects as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
