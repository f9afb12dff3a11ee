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

/**
 * Referrers before references (Kahn's order on the in-slice reference graph). Store paths cannot
 * form cycles; should corrupt rows make one, its paths come last and are returned as `cyclic`.
 */
function topologicalOrder(
  entries: PathEntry[],
  byHash: Map<string, PathEntry>,
): { order: PathEntry[]; cyclic: Set<string> } {
  const referrers = new Map<string, number>();
  for (const entry of entries)
    for (const ref of entry.references)
      if (byHash.has(ref)) referrers.set(ref, (referrers.get(ref) ?? 0) + 1);
  const queue = entries.filter((entry) => !referrers.has(entry.hashPart));
  const order: PathEntry[] = [];
  for (let i = 0; i < queue.length; i++) {
    const entry = queue[i] as PathEntry;
    order.push(entry);
    for (const ref of entry.references) {
      const left = (referrers.get(ref) ?? 0) - 1;
      referrers.set(ref, left);
      if (left === 0) queue.push(byHash.get(ref) as PathEntry);
    }
  }
  const placed = new Set(order);
  const cyclic = new Set<string>();
  for (const entry of entries) {
    if (placed.has(entry)) continue;
    order.push(entry);
    cyclic.add(entry.hashPart);
  }
  return { order, cyclic };
}

/** The pinned paths and everything they refer to in the slice. */
function closureOf(roots: Iterable<string>, byHash: Map<string, PathEntry>): Set<string> {
  const seen = new Set<string>();
  const stack = [...roots].filter((hash) => byHash.has(hash));
  while (stack.length > 0) {
    const hash = stack.pop() as string;
    if (seen.has(hash)) continue;
    seen.add(hash);
    for (const ref of (byHash.get(hash) as PathEntry).references) if (byHash.has(ref)) stack.push(ref);
  }
  return seen;
}

export function planSlice(input: PlanInput): SlicePlan {
  const entries = input.entries.map((entry) => ({
    ...entry,
    references: entry.references.filter((ref) => ref !== entry.hashPart),
  }));
  const byHash = new Map(entries.map((entry) => [entry.hashPart, entry]));
  const { order, cyclic } = topologicalOrder(entries, byHash);
  const rank = new Map(order.map((entry, index) => [entry.hashPart, index]));
  const pinned = closureOf(input.pinned, byHash);
  const graceStart = input.now - input.graceSeconds * 1000;

  const effective = new Map<string, number>();
  for (const entry of entries) {
    const own = Math.max(entry.createdAt, entry.lastAccessedAt);
    const keepAlways = pinned.has(entry.hashPart) || own >= graceStart || cyclic.has(entry.hashPart);
    effective.set(entry.hashPart, keepAlways ? Infinity : own);
  }
  for (const entry of order) {
    const time = effective.get(entry.hashPart) as number;
    for (const ref of entry.references) {
      if (byHash.has(ref) && (effective.get(ref) as number) < time) effective.set(ref, time);
    }
  }

  const lastPush = entries.reduce((latest, entry) => Math.max(latest, entry.createdAt), -Infinity);
  const prExpired =
    input.pullRequestTtlSeconds !== undefined && lastPush < input.now - input.pullRequestTtlSeconds * 1000;
  const ageCutoff = prExpired
    ? Infinity
    : input.policy.maxAgeSeconds !== undefined
      ? input.now - input.policy.maxAgeSeconds * 1000
      : -Infinity;

  const removed = new Map<string, RemovalReason>();
  const candidates: PathEntry[] = [];
  for (const entry of entries) {
    if ((effective.get(entry.hashPart) as number) < ageCutoff)
      removed.set(entry.hashPart, prExpired ? 'pr-ttl' : 'age');
    else candidates.push(entry);
  }
  // Most recently used first; on equal times a reference before its referrers, so every prefix of
  // this order is closed under references.
  candidates.sort(
    (a, b) =>
      (effective.get(b.hashPart) as number) - (effective.get(a.hashPart) as number) ||
      (rank.get(b.hashPart) ?? Infinity) - (rank.get(a.hashPart) ?? Infinity),
  );
  const maxSize = input.policy.maxSizeBytes ?? Infinity;
  let keptBytes = 0;
  let full = false;
  const keep: PathEntry[] = [];
  for (const entry of candidates) {
    const protectedEntry = effective.get(entry.hashPart) === Infinity;
    if (!protectedEntry && (full || keptBytes + entry.fileSize > maxSize)) {
      full = true;
      removed.set(entry.hashPart, 'size');
      continue;
    }
    keptBytes += entry.fileSize;
    keep.push(entry);
  }

  const pinnedEntries = entries.filter((entry) => pinned.has(entry.hashPart));
  return {
    keep,
    remove: order
      .filter((entry) => removed.has(entry.hashPart))
      .map((entry) => ({ entry, reason: removed.get(entry.hashPart) as RemovalReason })),
    pinned: {
      paths: pinnedEntries.length,
      bytes: pinnedEntries.reduce((sum, entry) => sum + entry.fileSize, 0),
    },
    overQuota: keptBytes > maxSize,
  };
}
