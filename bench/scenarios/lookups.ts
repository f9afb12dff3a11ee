/**
 * narinfo lookups: distinct GETs, half hits, through the proxy (proxy → server) against nginx
 * serving the same narinfo files statically. Also how lookup time grows with the request count.
 */
import { startBareHttp, type BareHttpServer } from '../lib/bare-http.js';
import { copyToFileCache, makeSigningKey } from '../lib/binary-cache.js';
import { buildPaths, deletePaths } from '../lib/closures.js';
import type { Context } from '../lib/context.js';
import { lookupRequests } from '../lib/hashes.js';
import { expectHitsAndMisses, getAll } from '../lib/load.js';
import { NGINX_INSTALL_HINT, startNginx, type StaticServer } from '../lib/nginx.js';
import { cpuNote, sideMedian, type CpuSample, type Row, type Side } from '../lib/report.js';
import { reason } from '../lib/sluice.js';
import { startStack, type Stack } from '../lib/stack.js';
import { median, rotate } from '../lib/stats.js';

export const GROWTH_FACTORS = [1, 4, 16];

export async function lookupScenarios(context: Context): Promise<Row[]> {
  const { sizes, log } = context;
  const counts = [sizes.lookups, ...GROWTH_FACTORS.map((factor) => factor * sizes.growthLookups)];
  const knownCount = Math.max(...counts) / 2;
  log(`lookups: building ${knownCount} small store paths`);
  const known = await buildPaths([{ count: knownCount, bytes: 1024 }]);

  const cacheDir = context.scratch('lookup-file-cache');
  await copyToFileCache(known.paths, cacheDir, await makeSigningKey(context.scratch('lookup-key')));

  let nginx: StaticServer | undefined;
  let nginxMissing: string | undefined;
  if (context.nginx) nginx = await startNginx(context.nginx, cacheDir, context.scratch('nginx'));
  else nginxMissing = `nginx is not installed (${NGINX_INSTALL_HINT})`;

  let floor: BareHttpServer | undefined;
  let stack: Stack | undefined;
  let sluiceMissing: string | undefined;
  try {
    stack = await startStack(context, ['cli', 'proxy']);
    log(`lookups: pushing ${knownCount} paths to the server`);
    const seeder = await stack.startJob();
    await seeder.drain(known.paths);
    await seeder.close();
  } catch (error) {
    sluiceMissing = reason(error);
    await stack?.close();
    stack = undefined;
  }

  /**
   * Each repetition gets fresh misses and a fresh daemon (a new job), so nothing is answered from
   * memory. With `floor`, a bare node:http server answering fixed text is measured alongside.
   */
  const measure = async (
    total: number,
    floor?: BareHttpServer,
  ): Promise<{ sluice: Side; baseline: Side; note?: string }> => {
    const cpu: CpuSample[] = [];
    const answeredFromSet: number[] = [];
    const answeredFromRecent: number[] = [];
    const viaProxy = async () => {
      const daemon = await stack!.startJob();
      try {
        // A real job's daemon has its narinfo set long before Nix asks: so does this one.
        await daemon.lookupSetLoaded();
        const requests = lookupRequests(known.paths, total);
        const before = {
          daemon: daemon.cpuSeconds(),
          server: stack!.server.cpuSeconds(),
          self: process.cpuUsage(),
        };
        const result = await getAll(daemon.url, requests.paths);
        const self = process.cpuUsage(before.self);
        cpu.push({
          wall: result.seconds,
          daemon: daemon.cpuSeconds() - before.daemon,
          server: stack!.server.cpuSeconds() - before.server,
          loadGenerator: (self.user + self.system) / 1e6,
        });
        expectHitsAndMisses(result, requests.hits, total, 'the proxy');
        const set = (await daemon.stats()).lookupSet;
        if (set) answeredFromSet.push(set.absent);
        if (set?.recent) answeredFromRecent.push(set.recent.served);
        return result.seconds;
      } finally {
        await daemon.close();
      }
    };
    const viaNginx = async () => {
      const requests = lookupRequests(known.paths, total);
      const result = await getAll(nginx!.url, requests.paths);
      expectHitsAndMisses(result, requests.hits, total, 'nginx');
      return result.seconds;
    };
    const floorCpu: number[] = [];
    const viaFloor = async () => {
      const requests = lookupRequests(known.paths, total);
      const before = floor!.cpuSeconds();
      const result = await getAll(floor!.url, requests.paths);
      floorCpu.push(floor!.cpuSeconds() - before);
      return result.seconds;
    };
    const sides = [...(stack ? [viaProxy] : []), ...(nginx ? [viaNginx] : []), ...(floor ? [viaFloor] : [])];
    const samples = await rotate(sizes.repetitions, sides);
    const sluice: Side = stack ? { samples: samples[0]! } : { unavailable: sluiceMissing! };
    const baseline: Side = nginx ? { samples: samples[stack ? 1 : 0]! } : { unavailable: nginxMissing! };
    const setNote = answeredFromSet.length
      ? `; misses answered from the daemon's narinfo set: ${answeredFromSet.join(', ')} of ${total - Math.floor(total / 2)} per run`
      : '';
    // The seeder pushed the hits just before: they are the slice's newest, so the daemon holds them.
    const recentNote = answeredFromRecent.length
      ? `; hits answered from the daemon's recent narinfos (the slice's newest; the seeder pushed them): ${answeredFromRecent.join(', ')} of ${Math.floor(total / 2)} per run`
      : '';
    const floorSamples = floor ? samples[sides.length - 1]! : [];
    const nginxMedian = sideMedian(baseline);
    const floorNote = floor
      ? `; the floor of any proxy on Node's HTTP server, a bare node:http server in its own process answering every GET with the same fixed text: ${median(floorSamples).toFixed(2)} s` +
        (nginxMedian ? ` (${(median(floorSamples) / nginxMedian).toFixed(2)}× nginx)` : '') +
        `, ${median(floorCpu).toFixed(2)} s CPU`
      : '';
    const cpuText = cpuNote(cpu, 2);
    const note = cpuText ? cpuText + setNote + recentNote + floorNote : undefined;
    return { sluice, baseline, ...(note ? { note } : {}) };
  };

  try {
    log(`lookups: ${sizes.lookups} GETs, proxy vs nginx (and a bare node:http server)`);
    floor = await startBareHttp(context.scratch('bare-http'));
    const main = await measure(sizes.lookups, floor);
    const rows: Row[] = [
      {
        scenario: `narinfo lookups: ${sizes.lookups.toLocaleString('en-US')} distinct GETs, half hits (proxy → server vs nginx)`,
        unit: 's',
        ...main,
        target: `≤ 1 s for 10,000; ≥ 0.5× nginx's rate (ratio ≤ 2)`,
        met: (seconds, ratio) => seconds <= sizes.lookups / 10_000 && ratio !== undefined && ratio <= 2,
      },
    ];
    for (const factor of GROWTH_FACTORS) {
      const total = factor * sizes.growthLookups;
      log(`lookups growth ${factor}×: ${total} GETs`);
      rows.push({
        group: 'growth',
        scenario: `growth: lookups ${factor}× (${total.toLocaleString('en-US')} GETs)`,
        unit: 's',
        ...(await measure(total)),
        target: 'linear',
      });
    }
    return rows;
  } finally {
    await floor?.close();
    await nginx?.close();
    await stack?.close();
    // Thousands of small paths a run: left in the store, they add up over many runs.
    await deletePaths(known);
  }
}
