/**
 * The plan alone on many random slices (the Nix property test runs a few end to end): kept paths'
 * closures are kept, pinned closures are kept, the quota holds unless protected paths exceed it,
 * an age-only policy keeps exactly what was used within max_age and its closure, and removals
 * come referrers first.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { planSlice, type PathEntry } from '../../../src/server/retention/plan.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1);

const slice = fc.integer({ min: 1, max: 30 }).chain((n) =>
  fc.record({
    refs: fc.tuple(
      ...Array.from({ length: n }, (_, i) => fc.subarray(Array.from({ length: i }, (_, j) => j))),
    ),
    sizes: fc.tuple(...Array.from({ length: n }, () => fc.integer({ min: 1, max: 1000 }))),
    usedDaysAgo: fc.tuple(...Array.from({ length: n }, () => fc.integer({ min: 0, max: 90 }))),
    pinned: fc.subarray(
      Array.from({ length: n }, (_, i) => i),
      { maxLength: Math.min(3, n) },
    ),
    maxAgeDays: fc.option(fc.integer({ min: 1, max: 60 })),
    maxSize: fc.option(fc.integer({ min: 0, max: 20_000 })),
  }),
);

const hash = (i: number) => `${i}`.padStart(32, '0');

function closure(refs: number[][], roots: Iterable<number>): Set<number> {
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const i = stack.pop()!;
    if (!seen.has(i)) {
      seen.add(i);
      stack.push(...refs[i]!);
    }
  }
  return seen;
}

describe('planSlice', () => {
  it('keeps closures, pins and the quota on random slices', () => {
    fc.assert(
      fc.property(slice, (s) => {
        const entries: PathEntry[] = s.refs.map((refs, i) => ({
          hashPart: hash(i),
          storePath: `/nix/store/${hash(i)}-p${i}`,
          narKey: `${i}.nar`,
          fileSize: s.sizes[i]!,
          references: refs.map(hash),
          createdAt: NOW - 91 * DAY,
          lastAccessedAt: NOW - s.usedDaysAgo[i]! * DAY - 2 * 3600_000,
        }));
        const plan = planSlice({
          entries,
          pinned: new Set(s.pinned.map(hash)),
          policy: {
            ...(s.maxAgeDays !== null ? { maxAgeSeconds: s.maxAgeDays * 86400 } : {}),
            ...(s.maxSize !== null ? { maxSizeBytes: s.maxSize } : {}),
          },
          now: NOW,
          graceSeconds: 3600,
        });
        const kept = new Set(plan.keep.map((entry) => Number(entry.hashPart)));
        expect(kept.size + plan.remove.length).toBe(entries.length);
        for (const i of closure(s.refs, kept)) expect(kept.has(i)).toBe(true);
        const pinned = closure(s.refs, s.pinned);
        for (const i of pinned) expect(kept.has(i)).toBe(true);
        const bytes = (set: Iterable<number>) => [...set].reduce((sum, i) => sum + s.sizes[i]!, 0);
        if (s.maxSize !== null) {
          if (bytes(pinned) > s.maxSize) expect(plan.overQuota).toBe(true);
          else expect(bytes(kept)).toBeLessThanOrEqual(s.maxSize);
        }
        if (s.maxSize === null && s.maxAgeDays !== null) {
          const recent = s.usedDaysAgo.flatMap((days, i) => (days < s.maxAgeDays! ? [i] : []));
          expect([...kept].sort()).toEqual([...closure(s.refs, [...recent, ...s.pinned])].sort());
        }
        // Referrers first: no removed path comes before a removed path that refers to it.
        const position = new Map(plan.remove.map(({ entry }, k) => [Number(entry.hashPart), k]));
        for (const [i, k] of position)
          for (const j of s.refs[i]!) if (position.has(j)) expect(position.get(j)!).toBeGreaterThan(k);
      }),
      { numRuns: 500 },
    );
  });
});
