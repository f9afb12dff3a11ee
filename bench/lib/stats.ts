/** Small statistics and timing helpers shared by the scenarios. */
import { performance } from 'node:perf_hooks';

export function median(samples: number[]): number {
  if (samples.length === 0) throw new Error('median of no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Runs `fn` and returns its result with the wall-clock seconds it took. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - start) / 1000, value };
}

/**
 * Runs every side `repetitions` times, rotating which goes first (A B C, B C A, C A B, …) so slow
 * drift of the machine (page cache, other tenants) hits every side alike. Returns the samples of
 * each side in the order the sides were given.
 */
export async function rotate(
  repetitions: number,
  sides: ((repetition: number) => Promise<number>)[],
): Promise<number[][]> {
  const samples: number[][] = sides.map(() => []);
  for (let repetition = 0; repetition < repetitions; repetition++) {
    for (let offset = 0; offset < sides.length; offset++) {
      const index = (repetition + offset) % sides.length;
      samples[index]!.push(await sides[index]!(repetition));
    }
  }
  return samples;
}

export const MiB = 1024 * 1024;
