/**
 * What goes into the job's new pack: the paths Nix took from the restored pack and the closures of
 * what the job built, minus `push-filter` matches and what an upstream cache serves; when that is
 * more than `max-pack-size` (counted in NAR bytes), the least recently used are dropped first. A
 * path counts as used as recently as the most recent path that needs it, so a reference is never
 * dropped before its referrers and the pack stays closed under references.
 */
import type { PathInfo } from '../push/local-store.js';

export interface PlanInput {
  /** Closure metadata of every candidate (used pack paths, built roots and their closures). */
  infos: PathInfo[];
  /** When each path was last used: built (reported) or taken from the pack. */
  lastUsed: Map<string, number>;
  /** Paths the restored pack holds: a pack is saved only if the plan holds a path not among them. */
  inRestoredPack: Set<string>;
  excluded: (path: string) => 'filtered' | 'upstream' | undefined;
  maxBytes: number;
}

export interface Plan {
  /** References before referrers. */
  paths: PathInfo[];
  narBytes: number;
  /** Paths in the plan the restored pack did not hold: what the job added. */
  added: number;
  dropped: number;
  filtered: number;
  upstream: number;
}

/** Orders infos so that every path comes after the references it has among them. */
export function referencesFirst(infos: PathInfo[]): PathInfo[] {
  const byPath = new Map(infos.map((info) => [info.path, info]));
  const done = new Set<string>();
  const out: PathInfo[] = [];
  const visit = (info: PathInfo): void => {
    const stack: [PathInfo, number][] = [[info, 0]];
    done.add(info.path);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const [current, i] = top;
      if (i < current.references.length) {
        top[1]++;
        const ref = byPath.get(current.references[i]!);
        if (ref && !done.has(ref.path)) {
          done.add(ref.path);
          stack.push([ref, 0]);
        }
      } else {
        stack.pop();
        out.push(current);
      }
    }
  };
  for (const info of [...infos].sort((a, b) => (a.path < b.path ? -1 : 1)))
    if (!done.has(info.path)) visit(info);
  return out;
}

export function planPack(input: PlanInput): Plan {
  let filtered = 0;
  let upstream = 0;
  const candidates = input.infos.filter((info) => {
    const why = input.excluded(info.path);
    if (why === 'filtered') filtered++;
    if (why === 'upstream') upstream++;
    return why === undefined;
  });
  const ordered = referencesFirst(candidates);
  const position = new Map(ordered.map((info, i) => [info.path, i]));
  // Referrers come later in `ordered`: walking backwards hands each path's recency to its references.
  const recency = new Map(ordered.map((info) => [info.path, input.lastUsed.get(info.path) ?? 0]));
  for (let i = ordered.length - 1; i >= 0; i--) {
    const info = ordered[i]!;
    const own = recency.get(info.path)!;
    for (const ref of info.references) {
      if (ref !== info.path && recency.has(ref) && recency.get(ref)! < own) recency.set(ref, own);
    }
  }
  const byPriority = [...ordered].sort(
    (a, b) => recency.get(b.path)! - recency.get(a.path)! || position.get(a.path)! - position.get(b.path)!,
  );
  const kept = new Set<string>();
  let narBytes = 0;
  for (const info of byPriority) {
    if (narBytes + info.narSize > input.maxBytes) break;
    narBytes += info.narSize;
    kept.add(info.path);
  }
  const paths = ordered.filter((info) => kept.has(info.path));
  return {
    paths,
    narBytes,
    added: paths.filter((info) => !input.inRestoredPack.has(info.path)).length,
    dropped: ordered.length - paths.length,
    filtered,
    upstream,
  };
}
