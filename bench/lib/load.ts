/**
 * The lookup load generator: many distinct GETs over a pool of keep-alive connections with a
 * bounded number in flight, measured the same way for every side.
 */
import { Pool } from 'undici';
import { timed } from './stats.js';

/** Nix's own default number of parallel HTTP connections (`http-connections`). */
export const LOOKUP_CONCURRENCY = 25;

export interface LoadResult {
  seconds: number;
  requestsPerSecond: number;
  statuses: Record<number, number>;
}

export async function getAll(
  baseUrl: string,
  paths: string[],
  headers: Record<string, string> = {},
  concurrency = LOOKUP_CONCURRENCY,
): Promise<LoadResult> {
  // A daemon's cache routes live under its secret path prefix: the pool takes the origin alone.
  const base = new URL(baseUrl);
  const prefix = base.pathname.replace(/\/$/, '');
  const pool = new Pool(base.origin, { connections: concurrency, pipelining: 1 });
  const statuses: Record<number, number> = {};
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++]!;
      const response = await pool.request({ method: 'GET', path: `${prefix}${path}`, headers });
      await response.body.text();
      statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1;
    }
  };
  try {
    const { seconds } = await timed(() => Promise.all(Array.from({ length: concurrency }, worker)));
    return { seconds, requestsPerSecond: paths.length / seconds, statuses };
  } finally {
    await pool.close();
  }
}

/** Throws unless exactly `hits` requests answered 200 and the rest 404: a fast wrong answer is no result. */
export function expectHitsAndMisses(result: LoadResult, hits: number, total: number, side: string): void {
  const ok = result.statuses[200] ?? 0;
  const missing = result.statuses[404] ?? 0;
  if (ok !== hits || missing !== total - hits) {
    throw new Error(
      `${side} answered ${JSON.stringify(result.statuses)}; expected ${hits}×200 and ${total - hits}×404`,
    );
  }
}
