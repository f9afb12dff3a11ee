/**
 * The collector on random reference graphs, random access times, sizes and pins, with real Nix:
 * after a collection every kept path's closure is in its slice, nothing pinned is gone, the slice
 * fits its quota unless pins exceed it, an age-only policy keeps exactly the paths used (or
 * needed by a path used) within max_age, and a fresh store substitutes every kept path trusting
 * only the server's key. On files + SQLite, and (fewer runs) on S3 (Ceph RGW) + PostgreSQL.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { sharedBackends } from '../../support/backends.js';
import { makeNixMachine, nix } from '../../support/nix.js';
import { DAY, TestClock, buildGraph, nixCopy, readNarInfo, sliceEntries } from '../../support/retention.js';
import { startTestServer, writeNetrc } from '../../support/server.js';

const scenario = fc.integer({ min: 3, max: 7 }).chain((n) =>
  fc.record({
    refs: fc.tuple(
      ...Array.from({ length: n }, (_, i) => fc.subarray(Array.from({ length: i }, (_, j) => j))),
    ),
    sizes: fc.tuple(...Array.from({ length: n }, () => fc.integer({ min: 100, max: 3000 }))),
    /** Days ago each path was last read (null: never since its push, 61 days ago). */
    readDaysAgo: fc.tuple(...Array.from({ length: n }, () => fc.option(fc.integer({ min: 0, max: 60 })))),
    pinned: fc.subarray(
      Array.from({ length: n }, (_, i) => i),
      { maxLength: 2 },
    ),
    maxAgeDays: fc.option(fc.integer({ min: 1, max: 60 })),
    /** As a share of the graph's bytes. */
    maxSizeShare: fc.option(fc.double({ min: 0.05, max: 1.2, noNaN: true })),
  }),
);

/** Node i and everything it refers to, transitively. */
function closure(refs: number[][], roots: number[]): Set<number> {
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const i = stack.pop() as number;
    if (!seen.has(i)) {
      seen.add(i);
      stack.push(...(refs[i] as number[]));
    }
  }
  return seen;
}

const BACKENDS: [string, () => Promise<string>, number][] = [
  ['files + SQLite', async () => '', 6],
  ['S3 + PostgreSQL', async () => (await sharedBackends()).yaml, 3],
];

describe.each(BACKENDS)('retention on random graphs on %s', (_name, backendYaml, numRuns) => {
  it('keeps closures whole, pins, quotas, and what it keeps substitutes', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const now = Date.now();
        const clock = new TestClock(now - 61 * DAY);
        const paths = await buildGraph({ refs: s.refs, sizes: s.sizes });
        // Bytes per node are the NAR's: known after the push, so the quota is set from them.
        const probe = await startTestServer({ clock: clock.now });
        const token0 = await probe.ciToken();
        await nixCopy(probe.url, token0, paths);
        const bytes = new Map((await sliceEntries(probe, 'acme/app')).map((e) => [e.storePath, e.fileSize]));
        await probe.close();
        const total = [...bytes.values()].reduce((a, b) => a + b, 0);
        const maxSize = s.maxSizeShare === null ? null : Math.max(1, Math.floor(total * s.maxSizeShare));
        const retention = [
          s.maxAgeDays !== null ? `max_age: ${s.maxAgeDays}d` : '',
          maxSize !== null ? `max_size: ${maxSize}` : '',
        ].filter(Boolean);
        const server = await startTestServer({
          clock: clock.now,
          yaml: `${await backendYaml()}${retention.length ? `retention: { ${retention.join(', ')} }\n` : ''}`,
        });
        try {
          const token = await server.ciToken();
          await nixCopy(server.url, token, paths);
          if (s.pinned.length) {
            const res = await fetch(`${server.url}/_api/v1/pins`, {
              method: 'POST',
              headers: { authorization: `Bearer ${token}` },
              body: JSON.stringify({ name: 'release', paths: s.pinned.map((i) => paths[i]) }),
            });
            expect([res.status, await res.text()]).toEqual([201, expect.any(String)]);
          }
          const reads = s.readDaysAgo
            .map((days, i) => ({ i, days }))
            .filter((read): read is { i: number; days: number } => read.days !== null)
            .sort((a, b) => b.days - a.days);
          for (const read of reads) {
            clock.set(now - read.days * DAY - 2 * 3600_000);
            expect(await readNarInfo(server.url, token, paths[read.i] as string)).toBe(200);
          }
          clock.set(now);
          const report = await server.collectGarbage();

          const kept = new Set((await sliceEntries(server, 'acme/app')).map((e) => e.storePath));
          const keptNodes = paths.map((path, i) => (kept.has(path) ? i : -1)).filter((i) => i >= 0);
          // Closures are whole.
          for (const i of closure(s.refs, keptNodes)) expect(kept.has(paths[i] as string)).toBe(true);
          // Pins are kept with their closures.
          const pinnedClosure = closure(s.refs, s.pinned);
          for (const i of pinnedClosure) expect(kept.has(paths[i] as string)).toBe(true);
          // The quota holds, unless the pins alone exceed it (reported).
          const keptBytes = [...kept].reduce((sum, path) => sum + (bytes.get(path) ?? 0), 0);
          const pinnedBytes = [...pinnedClosure].reduce(
            (sum, i) => sum + (bytes.get(paths[i] as string) ?? 0),
            0,
          );
          if (maxSize !== null) {
            if (pinnedBytes > maxSize) {
              expect(report.slices[0]?.overQuota).toBe(true);
              expect(keptBytes).toBe(pinnedBytes);
            } else expect(keptBytes).toBeLessThanOrEqual(maxSize);
          }
          // Age alone: exactly the paths read within max_age, their closures and the pins.
          if (maxSize === null) {
            const recent = s.readDaysAgo
              .map((days, i) => (days !== null && (s.maxAgeDays === null || days < s.maxAgeDays) ? i : -1))
              .filter((i) => i >= 0);
            const expected =
              s.maxAgeDays === null ? new Set(paths.keys()) : closure(s.refs, [...recent, ...s.pinned]);
            expect(keptNodes.sort()).toEqual([...expected].sort());
          }
          // What is kept substitutes from a fresh store, trusting only the server key.
          if (kept.size > 0) {
            const machine = makeNixMachine();
            await nix(
              'nix-store',
              [
                '--store',
                `${machine.dir}/store`,
                '-r',
                ...kept,
                '--option',
                'netrc-file',
                writeNetrc(machine.dir, await server.readToken(['acme/app'])),
                '--option',
                'substituters',
                server.url,
                '--option',
                'trusted-public-keys',
                server.publicKey,
              ],
              { machine },
            );
          }
        } finally {
          await server.close();
        }
      }),
      { numRuns, endOnFailure: true },
    );
  }, 120_000);
});
