/** Narinfo request paths for the lookup scenarios: hits from real store paths, misses made up. */
import { randomInt } from 'node:crypto';
import { NIX32_ALPHABET as NIX32 } from '../../src/nix/nix32.js';

export function hashPart(storePath: string): string {
  return storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
}

/** A random, well-formed store path hash that no store holds (2^160 of them). */
export function randomHash(): string {
  return Array.from({ length: 32 }, () => NIX32[randomInt(32)]).join('');
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** `total` distinct narinfo URLs, half of them for `known` store paths, in random order. */
export function lookupRequests(known: string[], total: number): { paths: string[]; hits: number } {
  const hits = Math.floor(total / 2);
  if (known.length < hits) throw new Error(`need ${hits} known paths, have ${known.length}`);
  const hitPaths = shuffle([...known])
    .slice(0, hits)
    .map((path) => `/${hashPart(path)}.narinfo`);
  const missPaths = Array.from({ length: total - hits }, () => `/${randomHash()}.narinfo`);
  return { paths: shuffle([...hitPaths, ...missPaths]), hits };
}
