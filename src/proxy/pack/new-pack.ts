/**
 * `POST /_sluice/pack` `{ paths?: string[], maxBytes: number }`: plans the job's new pack from what
 * Nix took from the restored pack and what the job built (the hook's reports plus `paths`, the
 * post step's store diff), and writes it into `<dir>/save/` for the post step to save. No pack
 * is written when the job added nothing to what it restored.
 */
import { join } from 'node:path';
import { HttpError } from '../../contracts/http-error.js';
import { StorePath } from '../../nix/store-path.js';
import type { PushConfig } from '../../contracts/daemon-config.js';
import type { Logger } from '../report/daemon-log.js';
import type { Stats } from '../report/stats.js';
import type { LocalStore, PathInfo } from '../push/local-store.js';
import type { BuiltCollector } from './collector.js';
import { planPack } from './planner.js';
import type { PackReader } from './reader.js';
import type { NewPackReport, RestoreReport } from '../../contracts/pack-api.js';
import type { PackRoutes } from './routes.js';
import { servedUpstream } from './upstream-check.js';
import { writePack } from './writer.js';

export interface NewPackContext {
  dir: string;
  push: PushConfig;
  store: LocalStore;
  stats: Stats;
  log: Logger;
  collector: BuiltCollector;
  routes: PackRoutes;
  restored: () => PackReader | undefined;
  restore: () => RestoreReport;
}

function parseBody(body: Record<string, unknown>): { paths: string[]; maxBytes: number } {
  const maxBytes = body.maxBytes;
  if (!Number.isSafeInteger(maxBytes) || (maxBytes as number) < 0)
    throw new HttpError(400, 'maxBytes must be a non-negative integer', 'bad_request');
  const paths = body.paths ?? [];
  if (!Array.isArray(paths)) throw new HttpError(400, 'paths must be an array of store paths', 'bad_request');
  for (const [i, path] of paths.entries()) {
    try {
      StorePath.parse(String(path));
    } catch (e) {
      throw new HttpError(400, `paths[${i}]: ${(e as Error).message}`, 'bad_request');
    }
  }
  return { paths: paths as string[], maxBytes: maxBytes as number };
}

export async function newPack(ctx: NewPackContext, body: Record<string, unknown>): Promise<NewPackReport> {
  const { paths, maxBytes } = parseBody(body);
  ctx.collector.enqueue(paths);
  await ctx.collector.idle();
  const restored = ctx.restored();
  const used = ctx.routes.used;
  const report: NewPackReport = {
    stats: ctx.stats.toJSON(),
    restore: ctx.restore(),
    used: { paths: used.size, bytes: ctx.routes.usedBytes },
    built: ctx.collector.roots.size,
  };
  if (!ctx.push.enabled) return { ...report, reason: 'the `push` input is `false`' };
  const inRestoredPack = new Set(restored?.index.entries.map((e) => e.path) ?? []);
  const roots = [...new Set([...ctx.collector.roots.keys(), ...used.keys()])];
  if (roots.length === 0) return { ...report, reason: 'the job built nothing and took nothing from a pack' };

  const infos = await closureOfValid(ctx.store, roots);
  const filter = ctx.push.filter ? new RegExp(ctx.push.filter) : undefined;
  const fresh = infos.filter((info) => !inRestoredPack.has(info.path) && !filter?.test(info.path));
  const upstream = await servedUpstream(
    ctx.push.upstreamCaches,
    fresh.map((info) => info.path),
  );
  const lastUsed = new Map<string, number>([...ctx.collector.roots, ...used]);
  const plan = planPack({
    infos,
    lastUsed,
    inRestoredPack,
    excluded: (path) => (filter?.test(path) ? 'filtered' : upstream.has(path) ? 'upstream' : undefined),
    maxBytes,
  });
  report.plan = {
    paths: plan.paths.length,
    narBytes: plan.narBytes,
    added: plan.added,
    dropped: plan.dropped,
    filtered: plan.filtered,
    upstream: plan.upstream,
  };
  if (plan.added === 0) {
    const why =
      plan.dropped > 0 && plan.paths.length === 0
        ? `nothing fits in max-pack-size (${maxBytes} bytes)`
        : 'the job built nothing new: everything it needs came from the restored pack, an upstream cache, or is excluded by push-filter';
    return { ...report, reason: why };
  }
  const started = Date.now();
  const written = await writePack(join(ctx.dir, 'save'), plan.paths);
  ctx.log.info(
    {
      paths: written.index.entries.length,
      vanished: written.vanished.length,
      bytes: written.bytes,
      seconds: (Date.now() - started) / 1000,
    },
    'pack written',
  );
  if (written.index.entries.length === 0)
    return {
      ...report,
      reason: 'every path planned for it was deleted from the store before it was written',
    };
  return {
    ...report,
    stats: ctx.stats.toJSON(),
    written: { root: written.root, paths: written.index.entries.length, bytes: written.bytes },
  };
}

/**
 * The closure of those of `roots` still in the store. The store is shared: a path valid when
 * checked can be deleted (`nix-store --delete`, a GC) before `path-info` reads it, so on a failure
 * the validity check runs again, once.
 */
async function closureOfValid(store: LocalStore, roots: string[]): Promise<PathInfo[]> {
  for (let attempt = 1; ; attempt++) {
    const invalid = new Set(await store.invalidPaths(roots));
    try {
      return await store.closureInfo(roots.filter((p) => !invalid.has(p)));
    } catch (error) {
      if (attempt === 2) throw error;
    }
  }
}
