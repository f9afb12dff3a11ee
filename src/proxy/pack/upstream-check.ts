/**
 * Which store paths an upstream cache (cache.nixos.org by default) serves: those need not take
 * room in the pack, Nix gets them there anyway. HEAD of each narinfo without credentials; a cache
 * that fails on the network serves nothing and is not asked again in this check.
 */
import { StorePath } from '../../nix/store-path.js';
import { Upstream } from '../upstream/upstream-client.js';

const TIMEOUT_MS = 5_000;
const CONCURRENCY = 16;

export async function servedUpstream(caches: string[], paths: string[]): Promise<Set<string>> {
  const served = new Set<string>();
  for (const url of caches) {
    const cache = new Upstream(url, {
      retry: { retries: 1 },
      connections: 4,
      connectTimeoutMs: TIMEOUT_MS,
      headersTimeoutMs: TIMEOUT_MS,
      bodyTimeoutMs: TIMEOUT_MS,
    });
    const todo = paths.filter((p) => !served.has(p));
    let next = 0;
    let down = false;
    const worker = async (): Promise<void> => {
      while (next < todo.length && !down) {
        const path = todo[next++]!;
        try {
          const response = await cache.request({
            method: 'HEAD',
            path: `/${StorePath.parse(path).hashPart}.narinfo`,
            signal: AbortSignal.timeout(TIMEOUT_MS * 2),
          });
          await response.body.dump();
          if (response.statusCode === 200) served.add(path);
        } catch {
          down = true;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker));
    } finally {
      await cache.destroy();
    }
  }
  return served;
}
