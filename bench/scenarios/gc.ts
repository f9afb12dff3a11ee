/**
 * Garbage collection over many narinfos (5% to remove) while lookups run: the collection's time,
 * and batch lookups (100 hash parts per POST, 4 in flight, as the daemon sends them) during it
 * against the same load while idle. The server runs from the sources in a process of its own
 * (bench/lib/gc-server.ts) and collects in that process, as its schedule does.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Context } from '../lib/context.js';
import { profilingFlags } from '../lib/profile.js';
import type { Row } from '../lib/report.js';
import { median } from '../lib/stats.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BATCH = 100;
const IN_FLIGHT = 4;

interface Load {
  lookups: number;
  seconds: number;
  latencies: number[];
}

/** Batch lookups of random kept paths until `until` resolves. */
async function lookupsUntil(
  url: string,
  token: string,
  kept: string[],
  until: Promise<unknown>,
): Promise<Load> {
  let done = false;
  void until.then(() => (done = true));
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (!done) {
        const hashParts = Array.from({ length: BATCH }, () => kept[Math.floor(Math.random() * kept.length)]);
        const t = performance.now();
        await lookupBatch(url, token, hashParts as string[]);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { lookups: latencies.length * BATCH, seconds: (performance.now() - started) / 1000, latencies };
}

async function lookupBatch(url: string, token: string, hashParts: string[]): Promise<void> {
  const res = await fetch(`${url}/_api/v1/narinfos`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ hashParts }),
  });
  const body = (await res.json()) as { narinfos: Record<string, string> };
  if (res.status !== 200 || Object.keys(body.narinfos).length === 0)
    throw new Error(`batch lookup answered ${res.status}`);
}

const p95 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.95)] ?? 0;

export async function gcScenario(context: Context): Promise<Row[]> {
  const count = context.sizes.gcNarinfos;
  context.log(`gc: filling a data directory with ${count} narinfos`);
  const child = spawn(
    process.execPath,
    [
      ...profilingFlags(context.profileDir),
      '--experimental-transform-types',
      '--no-warnings',
      '--import',
      join(ROOT, '__tests__/support/ts-loader.mjs'),
      join(ROOT, 'bench/lib/gc-server.ts'),
      context.scratch('gc-data'),
      String(count),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  context.processLabels.set(child.pid!, 'gc server');
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async <T>(key: string): Promise<T> => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`the gc server exited before its '${key}' line`);
    return (JSON.parse(value as string) as Record<string, T>)[key] as T;
  };
  try {
    const ready = await next<{ url: string; token: string; keptFile: string }>('ready');
    const kept = JSON.parse(readFileSync(ready.keptFile, 'utf8')) as string[];
    // Every row's first read records its access (a write); later reads within the refresh window
    // do not. Read them all once first, so both phases measure the same kind of lookup.
    context.log(`gc: reading all ${kept.length} kept narinfos once`);
    for (let i = 0; i < kept.length; i += BATCH)
      await lookupBatch(ready.url, ready.token, kept.slice(i, i + BATCH));
    const idleSeconds = context.sizes.repetitions * 2;
    context.log(`gc: ${idleSeconds} s of lookups while idle`);
    const idle = await lookupsUntil(
      ready.url,
      ready.token,
      kept,
      new Promise((r) => setTimeout(r, idleSeconds * 1000)),
    );
    context.log('gc: collecting while the same lookups run');
    child.stdin.write('gc\n');
    const result = next<{ seconds: number; removedPaths: number; removedNars: number }>('gc');
    const during = await lookupsUntil(ready.url, ready.token, kept, result);
    const gc = await result;
    if (gc.removedPaths !== count / 20)
      throw new Error(`the collection removed ${gc.removedPaths} paths, expected ${count / 20}`);
    const rate = (load: Load) => load.lookups / load.seconds;
    const ms = (value: number) => `${value.toFixed(1)} ms`;
    return [
      {
        scenario: `collection of ${count.toLocaleString('en-US')} narinfos, 5% removed (${gc.removedNars.toLocaleString('en-US')} NAR files), lookups running`,
        unit: 's',
        sluice: { samples: [gc.seconds] },
        target: 'measured (no target)',
      },
      {
        scenario: 'batch narinfo lookups during that collection vs idle (rate)',
        unit: 'req/s',
        sluice: { samples: [rate(during)] },
        baseline: { samples: [rate(idle)] },
        target: 'lookups during ≤ 1.2× slower than idle (ratio ≥ 0.83)',
        met: (_median, ratio) => ratio !== undefined && ratio >= 1 / 1.2,
        note:
          `batch of ${BATCH} latency p50/p95: idle ${ms(median(idle.latencies))}/${ms(p95(idle.latencies))}, ` +
          `during ${ms(median(during.latencies))}/${ms(p95(during.latencies))}; ${during.lookups.toLocaleString('en-US')} lookups during`,
      },
    ];
  } finally {
    child.stdin.end('exit\n');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}
