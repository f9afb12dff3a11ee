/**
 * Runs a GcPacer in a process of its own, so that whether `--expose-gc` is on is what the command
 * line says (jest's workers turn it on for good once a test has started the server's pacer).
 * Prints, per call of `spent`, the kinds of collection that started while it ran.
 *
 * Usage: node [--expose-gc] --experimental-transform-types --import ./ts-hooks.mjs gc-pacer-child.ts PACE-JSON BYTES...
 */
import { constants, PerformanceObserver, performance, type PerformanceEntry } from 'node:perf_hooks';
import { GcPacer, type GcPace } from '../../src/nix/gc-pacer.js';

const [paceJson = '{}', ...spends] = process.argv.slice(2);
const pacer = new GcPacer(JSON.parse(paceJson) as GcPace);
const entries: PerformanceEntry[] = [];
const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
observer.observe({ entryTypes: ['gc'] });
// The calls are synchronous and allocate nothing else: a collection that starts during one is its.
const windows = spends.map((bytes) => {
  const start = performance.now();
  pacer.spent(Number(bytes));
  return [start, performance.now()] as const;
});
// Entries are delivered after the fact.
setTimeout(() => {
  observer.disconnect();
  const kind = (entry: PerformanceEntry) =>
    (entry as PerformanceEntry & { detail: { kind: number } }).detail.kind ===
    constants.NODE_PERFORMANCE_GC_MAJOR
      ? 'major'
      : 'minor';
  // Kinds, not counts: V8 may report one requested collection in two steps.
  const kinds = windows.map(([start, end]) =>
    [...new Set(entries.filter((e) => e.startTime >= start && e.startTime <= end).map(kind))].sort(),
  );
  process.stdout.write(JSON.stringify(kinds));
}, 100);
