/**
 * NAR readahead. Nix 2.8 substitutes one path at a time (`max-jobs` 1 by default), so every NAR
 * pays a round trip through the proxy and the server before Nix sees its first byte, and the bytes
 * cross two HTTP hops while Nix waits. But Nix asks for the narinfos of everything it will
 * substitute first. So once Nix starts downloading NARs, the proxy fetches the NARs of the other
 * narinfos it answered, in the order Nix will ask for them, a few at a time and within a memory
 * budget, and hands each one over from memory when Nix asks for it. Until Nix downloads a first NAR nothing is fetched: a job that only
 * looks paths up costs the server nothing more. Large NARs are left to stream through: for them
 * the round trip is small next to the transfer.
 */
import { BufferPool } from '../../nix/buffer-pool.js';
import { parseNarUrl } from '../../nix/nar-url.js';
import { parseNarInfo, type NarInfo } from '../../nix/narinfo.js';
import { StorePath } from '../../nix/store-path.js';
import type { Logger } from '../report/daemon-log.js';
import { describeNetworkError, type Upstream } from '../upstream/upstream-client.js';

export interface ReadaheadLimits {
  /** NARs fetched at once. */
  concurrency: number;
  /** Bytes held in memory (fetched or being fetched, not yet handed over). */
  budgetBytes: number;
  /** Larger NARs are not fetched ahead. */
  maxFileBytes: number;
  /** A fetched NAR Nix has not asked for within this long is dropped. */
  holdMs: number;
  /** Narinfo hits remembered as candidates; later ones are not fetched ahead. */
  maxCandidates: number;
}

export const DEFAULT_READAHEAD: ReadaheadLimits = {
  concurrency: 4,
  budgetBytes: 32 * 1024 * 1024,
  maxFileBytes: 8 * 1024 * 1024,
  holdMs: 120_000,
  maxCandidates: 10_000,
};

/** A NAR fetched ahead: its answer's headers and bytes. */
export interface FetchedNar {
  headers: Record<string, string | string[]>;
  /** The bytes, on pages of the readahead's pool. */
  chunks: Buffer[];
  size: number;
  /** Gives the pages back: call once nothing reads `chunks` any more (the response is closed). */
  release(): void;
}

/**
 * NARs fetched ahead are copied onto pages of this size as they arrive, from a pool. The
 * network's buffers then die young: holding them for the second or so until Nix asked made V8
 * promote them and run a full collection every few MiB.
 */
export const PAGE_BYTES = 256 * 1024;
/** The readahead keeps no pages once it has been idle this long. */
const PAGES_IDLE_MS = 10_000;

interface Fetch {
  size: number;
  startedAt: number;
  result: Promise<FetchedNar | undefined>;
}

/** A NAR that may be fetched ahead: what its narinfo says. */
export interface Candidate {
  /** `/nar/…` */
  narPath: string;
  size: number;
  hashPart: string;
  /** Hash parts of its references. */
  references: string[];
  /** Nix's order among goals that may run: by name, then by path. */
  key: string;
}

/** The NAR URLs the server writes: anything else in a narinfo is not fetched. */

export function parseCandidate(narinfo: string): Candidate | undefined {
  let info: NarInfo;
  let path: StorePath;
  try {
    info = parseNarInfo(narinfo);
    path = StorePath.parse(info.storePath);
  } catch {
    return undefined;
  }
  if (!parseNarUrl(info.url) || !info.fileSize) return undefined;
  const references = info.references
    .map((ref) => ref.slice(0, 32))
    .filter((hashPart) => hashPart !== path.hashPart);
  return {
    narPath: `/${info.url}`,
    size: info.fileSize,
    hashPart: path.hashPart,
    references,
    key: `${path.name}$${path.hashPart}`,
  };
}

/**
 * The order Nix 2.8 will ask for these NARs in: a path after its references, and among paths
 * that may go next, by name then path (its goals are kept sorted that way).
 */
export function substitutionOrder(candidates: Iterable<Candidate>): Candidate[] {
  const pending = new Map<string, Candidate>();
  for (const candidate of candidates) pending.set(candidate.hashPart, candidate);
  const blockers = new Map<string, number>();
  const dependents = new Map<string, Candidate[]>();
  for (const candidate of pending.values()) {
    const waitingFor = candidate.references.filter((ref) => pending.has(ref));
    blockers.set(candidate.hashPart, waitingFor.length);
    for (const ref of waitingFor) {
      const list = dependents.get(ref);
      if (list) list.push(candidate);
      else dependents.set(ref, [candidate]);
    }
  }
  // Sorted descending, so the next one pops off the end.
  const ready = [...pending.values()].filter((c) => blockers.get(c.hashPart) === 0);
  ready.sort((a, b) => (a.key < b.key ? 1 : -1));
  const order: Candidate[] = [];
  while (ready.length > 0) {
    const next = ready.pop()!;
    order.push(next);
    for (const dependent of dependents.get(next.hashPart) ?? []) {
      const left = blockers.get(dependent.hashPart)! - 1;
      blockers.set(dependent.hashPart, left);
      if (left > 0) continue;
      let low = 0;
      let high = ready.length;
      while (low < high) {
        const mid = (low + high) >> 1;
        if (ready[mid]!.key > dependent.key) low = mid + 1;
        else high = mid;
      }
      ready.splice(low, 0, dependent);
    }
  }
  return order;
}

export class Readahead {
  /** Narinfo hits whose NARs Nix has not asked for and that are not fetched, by NAR path. */
  private readonly candidates = new Map<string, Candidate>();
  /** Narinfos answered before Nix's first NAR request, parsed only if one comes. */
  private unparsed: string[] = [];
  /** `candidates` in substitution order, worked out again when a candidate arrives. */
  private plan: Candidate[] = [];
  private planned = true;
  private readonly fetches = new Map<string, Fetch>();
  private readonly pages: BufferPool;
  private held = 0;
  private inFlight = 0;
  private active = false;
  private closed = false;
  private pumpScheduled = false;

  constructor(
    private readonly server: Upstream,
    private readonly log: Logger,
    private readonly limits: ReadaheadLimits = DEFAULT_READAHEAD,
  ) {
    // The budget's worth, and a partly filled page for each fetch in flight.
    const pages = Math.ceil(limits.budgetBytes / PAGE_BYTES) + limits.concurrency;
    this.pages = new BufferPool(PAGE_BYTES, pages, PAGES_IDLE_MS);
  }

  /** A narinfo Nix got from the server: its NAR may be fetched ahead. */
  noteHit(narinfo: string): void {
    if (this.closed) return;
    if (!this.active) {
      if (this.unparsed.length < this.limits.maxCandidates) this.unparsed.push(narinfo);
      return;
    }
    this.addCandidate(narinfo);
    // A batch answers many lookups at once: plan once for all of them.
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  private addCandidate(narinfo: string): void {
    const candidate = parseCandidate(narinfo);
    if (!candidate || candidate.size > this.limits.maxFileBytes) return;
    if (this.fetches.has(candidate.narPath) || this.candidates.has(candidate.narPath)) return;
    if (this.candidates.size >= this.limits.maxCandidates) return;
    this.candidates.set(candidate.narPath, candidate);
    this.planned = false;
  }

  /**
   * Nix asks for the NAR at `path`: the bytes if they were fetched ahead (waiting for a fetch in
   * flight), otherwise undefined and the caller streams it. The first call starts the readahead.
   */
  async take(path: string): Promise<FetchedNar | undefined> {
    if (!this.active) {
      this.active = true;
      for (const narinfo of this.unparsed) this.addCandidate(narinfo);
      this.unparsed = [];
    }
    this.candidates.delete(path);
    const fetch = this.fetches.get(path);
    this.pump();
    if (!fetch) return undefined;
    const nar = await fetch.result;
    if (this.fetches.get(path) !== fetch) return undefined;
    this.forget(path, fetch);
    this.pump();
    return nar;
  }

  /** Drops everything held; nothing more is fetched. */
  close(): void {
    this.closed = true;
    this.candidates.clear();
    this.unparsed = [];
    this.plan = [];
    for (const [path, fetch] of this.fetches) this.drop(path, fetch);
    this.pages.clear();
  }

  /** The fetch is no longer held here: handed over, or failed. */
  private forget(path: string, fetch: Fetch): void {
    this.fetches.delete(path);
    this.held -= fetch.size;
  }

  /** Forgets the fetch, and gives its pages back once (if) it completes. */
  private drop(path: string, fetch: Fetch): void {
    this.forget(path, fetch);
    void fetch.result.then((nar) => nar?.release());
  }

  /** Starts fetches in Nix's order while there is room; never skips ahead of a NAR that does not fit. */
  private pump(): void {
    if (!this.active || this.closed) return;
    this.dropStale();
    if (!this.planned) {
      this.plan = substitutionOrder(this.candidates.values()).reverse();
      this.planned = true;
    }
    while (this.inFlight < this.limits.concurrency && this.plan.length > 0) {
      const next = this.plan[this.plan.length - 1]!;
      // Asked for by Nix or fetched meanwhile (two store paths with the same contents share a NAR).
      if (!this.candidates.has(next.narPath)) {
        this.plan.pop();
        continue;
      }
      if (this.held + next.size > this.limits.budgetBytes) return;
      this.plan.pop();
      this.candidates.delete(next.narPath);
      this.start(next.narPath, next.size);
    }
  }

  private start(path: string, size: number): void {
    this.held += size;
    this.inFlight++;
    const result = fetchWhole(this.server, path, this.pages)
      .catch((e: unknown) => {
        this.log.debug({ path, err: describeNetworkError(e) }, 'NAR readahead failed');
        return undefined;
      })
      .finally(() => {
        this.inFlight--;
        this.pump();
      });
    const fetch: Fetch = { size, startedAt: Date.now(), result };
    this.fetches.set(path, fetch);
    // A failed fetch holds nothing: Nix's own request will stream the NAR.
    void result.then((nar) => {
      if (!nar && this.fetches.get(path) === fetch) {
        this.forget(path, fetch);
        this.pump();
      }
    });
  }

  private dropStale(): void {
    const cutoff = Date.now() - this.limits.holdMs;
    for (const [path, fetch] of this.fetches) {
      if (fetch.startedAt < cutoff) this.drop(path, fetch);
    }
  }
}

/** GETs a NAR whole onto pages of `pool`; undefined unless the server answered 200. */
async function fetchWhole(server: Upstream, path: string, pool: BufferPool): Promise<FetchedNar | undefined> {
  const response = await server.request({ method: 'GET', path, retry: { retries: 0 } });
  if (response.statusCode !== 200) {
    await response.body.dump();
    return undefined;
  }
  const pages: Buffer[] = [];
  let used = PAGE_BYTES;
  let size = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      for (let offset = 0; offset < chunk.length;) {
        if (used === PAGE_BYTES) {
          pages.push(pool.take());
          used = 0;
        }
        const copied = chunk.copy(pages[pages.length - 1]!, used, offset);
        used += copied;
        offset += copied;
      }
      size += chunk.length;
    }
  } catch (error) {
    pool.give(pages);
    throw error;
  }
  const chunks = pages.map((page, i) => (i === pages.length - 1 ? page.subarray(0, used) : page));
  let released = false;
  const release = () => {
    if (!released) pool.give(pages);
    released = true;
  };
  return { headers: response.headers as Record<string, string | string[]>, chunks, size, release };
}
