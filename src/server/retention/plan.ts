/**
 * Which paths of one slice a collection keeps, and why the others go. Pure: the collector feeds it
 * the slice's rows and pins, and deletes what it says.
 *
 * Each path gets an effective time: its own last read or push, raised to that of every path in the
 * slice that refers to it (so a path is never older than its referrers), and +infinity for pinned
 * closures and paths used within the grace window. Age removes paths whose effective time is past
 * `max_age`; size keeps the most recently used paths (references before referrers on ties) while
 * they fit. Both decisions keep closures whole: a referrer is never newer than its references.
 */
import type { RetentionPolicy } from '../config/retention-config.js';

export interface PathEntry {
  hashPart: string;
  storePath: string;
  narKey: string;
  /** Bytes of its NAR file (the slice's size counts these). */
  fileSize: number;
  /** Hash parts of its references, itself excluded. */
  references: string[];
  createdAt: number;
  lastAccessedAt: number;
}

export type RemovalReason = 'age' | 'size' | 'pr-ttl';

export interface PlanInput {
  entries: PathEntry[];
  /** Hash parts of pinned store paths (their closures are kept). */
  pinned: ReadonlySet<string>;
  policy: RetentionPolicy;
  /** Set for a pull-request slice: it goes whole once its last push is this old (seconds). */
  pullRequestTtlSeconds?: number;
  now: number;
  graceSeconds: number;
}

export interface SlicePlan {
  keep: PathEntry[];
  /** In deletion order: referrers before their references. */
  remove: { entry: PathEntry; reason: RemovalReason }[];
  /** The pinned closures' paths and bytes (always kept). */
  pinned: { paths: number; bytes: number };
  /** Kept bytes exceed max_size because pins and the grace window alone need more. */
  overQuota: boolean;
}

/** The slice's reference graph by row index: references inside the slice only, itself excluded. */
function referenceIndexes(entries: PathEntry[]): { refs: number[][]; index: Map<string, number> } {
  const index = new Map<string, number>();
  entries.forEach((entry, i) => index.set(entry.hashPart, i));
  const refs = entries.map((entry, i) => {
    const out: number[] = [];
    for (const ref of entry.references) {
      const j = index.get(ref);
      if (j !== undefined && j !== i) out.push(j);
    }
    return out;
  });
  return { refs, index };
}

/**
 * Referrers before references (Kahn's order on the in-slice reference graph), as row indexes.
 * Store paths cannot form cycles, but references are the uploader's word: rows on a cycle, and
 * those they refer to, come last and are marked `cyclic`.
 */
function topologicalOrder(refs: number[][]): { order: Int32Array; cyclic: Uint8Array } {
  const n = refs.length;
  const referrers = new Int32Array(n);
  for (const list of refs) for (const j of list) referrers[j]!++;
  const order = new Int32Array(n);
  let length = 0;
  for (let i = 0; i < n; i++) if (referrers[i] === 0) order[length++] = i;
  for (let k = 0; k < length; k++) {
    for (const j of refs[order[k]!]!) if (--referrers[j]! === 0) order[length++] = j;
  }
  const cyclic = new Uint8Array(n);
  if (length < n) {
    const placed = new Uint8Array(n);
    for (let k = 0; k < length; k++) placed[order[k]!] = 1;
    for (let i = 0; i < n; i++)
      if (!placed[i]) {
        order[length++] = i;
        cyclic[i] = 1;
      }
  }
  return { order, cyclic };
}

/**
 * Gives each `cyclic` row the most recent time of any row that reaches it, as the topological pass
 * does for the others, so a cycle ages (and goes) as a whole. Highest first: a row's final value
 * is that of the first root to reach it, and each row is visited once.
 */
function spreadOverCycles(effective: Float64Array, refs: number[][], cyclic: Uint8Array): void {
  const roots: number[] = [];
  for (let i = 0; i < cyclic.length; i++) if (cyclic[i]) roots.push(i);
  roots.sort((a, b) => effective[b]! - effective[a]!);
  const done = new Uint8Array(cyclic.length);
  for (const root of roots) {
    if (done[root]) continue;
    done[root] = 1;
    const stack = [root];
    while (stack.length > 0) {
      const i = stack.pop()!;
      effective[i] = effective[root]!;
      for (const j of refs[i]!)
        if (!done[j]) {
          done[j] = 1;
          stack.push(j);
        }
    }
  }
}

/** The pinned paths and everything they refer to in the slice, as a mark per row. */
function closureOf(roots: Iterable<string>, index: Map<string, number>, refs: number[][]): Uint8Array {
  const seen = new Uint8Array(refs.length);
  const stack: number[] = [];
  for (const hash of roots) {
    const i = index.get(hash);
    if (i !== undefined) stack.push(i);
  }
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (seen[i]) continue;
    seen[i] = 1;
    for (const j of refs[i]!) if (!seen[j]) stack.push(j);
  }
  return seen;
}

/**
 * Row indexes and typed arrays rather than maps keyed by hash part: a slice of 100,000 paths is
 * planned in tens of milliseconds, which matters because planning holds the event loop.
 */
export function planSlice(input: PlanInput): SlicePlan {
  const entries = input.entries;
  const n = entries.length;
  const { refs, index } = referenceIndexes(entries);
  const { order, cyclic } = topologicalOrder(refs);
  const rank = new Int32Array(n);
  for (let k = 0; k < n; k++) rank[order[k]!] = k;
  const pinned = closureOf(input.pinned, index, refs);
  const graceStart = input.now - input.graceSeconds * 1000;

  const effective = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const entry = entries[i]!;
    const own = Math.max(entry.createdAt, entry.lastAccessedAt);
    // Not Infinity for cyclic rows: any writer could then keep paths past max_age, max_size and
    // a pull request's TTL by uploading two narinfos that name each other.
    effective[i] = pinned[i] || own >= graceStart ? Infinity : own;
  }
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    for (const j of refs[i]!) if (effective[j]! < effective[i]!) effective[j] = effective[i]!;
  }
  spreadOverCycles(effective, refs, cyclic);

  let lastPush = -Infinity;
  for (const entry of entries) lastPush = Math.max(lastPush, entry.createdAt);
  const prExpired =
    input.pullRequestTtlSeconds !== undefined && lastPush < input.now - input.pullRequestTtlSeconds * 1000;
  const ageCutoff = prExpired
    ? Infinity
    : input.policy.maxAgeSeconds !== undefined
      ? input.now - input.policy.maxAgeSeconds * 1000
      : -Infinity;

  const removed: (RemovalReason | undefined)[] = new Array(n);
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) {
    if (effective[i]! < ageCutoff) removed[i] = prExpired ? 'pr-ttl' : 'age';
    else candidates.push(i);
  }
  // Most recently used first; on equal times a reference before its referrers, so every prefix of
  // this order is closed under references.
  candidates.sort((a, b) => effective[b]! - effective[a]! || rank[b]! - rank[a]!);
  const maxSize = input.policy.maxSizeBytes ?? Infinity;
  let keptBytes = 0;
  let full = false;
  const keep: PathEntry[] = [];
  for (const i of candidates) {
    const entry = entries[i]!;
    if (effective[i] !== Infinity && (full || keptBytes + entry.fileSize > maxSize)) {
      full = true;
      removed[i] = 'size';
      continue;
    }
    keptBytes += entry.fileSize;
    keep.push(entry);
  }

  const remove: SlicePlan['remove'] = [];
  for (let k = 0; k < n; k++) {
    const reason = removed[order[k]!];
    if (reason) remove.push({ entry: entries[order[k]!]!, reason });
  }
  let pinnedPaths = 0;
  let pinnedBytes = 0;
  for (let i = 0; i < n; i++)
    if (pinned[i]) {
      pinnedPaths++;
      pinnedBytes += entries[i]!.fileSize;
    }
  return {
    keep,
    remove,
    pinned: { paths: pinnedPaths, bytes: pinnedBytes },
    overQuota: keptBytes > maxSize,
  };
}
