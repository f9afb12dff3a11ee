/**
 * Narinfos fetched ahead of Nix: once Nix is given a narinfo, the narinfos of its references are
 * what it asks next (it walks the closure), so they are asked of the server at once, in the same
 * batches as Nix's own lookups. Only paths the narinfo set may hold are fetched; each answer is
 * handed over once, and dropped unasked after `ttlMs`. Only the server's answers are held: the
 * server decides what the token reads, exactly as for a lookup Nix makes itself.
 */

export interface PrefetchLimits {
  /** Answers held (or in flight) at once; the oldest is dropped beyond it. */
  maxEntries: number;
  ttlMs: number;
}

export const PREFETCH_LIMITS: PrefetchLimits = { maxEntries: 10_000, ttlMs: 60_000 };

/** The hash parts of a narinfo's `References:` line. */
export function referenceHashParts(narinfo: string): string[] {
  const line = /^References: ?(.*)$/m.exec(narinfo)?.[1] ?? '';
  return line
    .split(' ')
    .filter((name) => name.length > 32)
    .map((name) => name.slice(0, 32));
}

export class NarInfoPrefetch<A> {
  private readonly ahead = new Map<string, { answer: Promise<A | undefined>; at: number }>();
  /** Answers handed to Nix from here, for the stats. */
  served = 0;
  fetched = 0;

  constructor(
    private readonly lookup: (hashPart: string) => Promise<A | undefined>,
    /** Whether a reference is worth asking for (the set may hold it, no recent miss). */
    private readonly wanted: (hashPart: string) => boolean,
    private readonly now: () => number,
    private readonly limits: PrefetchLimits = PREFETCH_LIMITS,
  ) {}

  /** Nix was given this narinfo (of `hashPart`): fetch its references' ahead. */
  noteHit(hashPart: string, narinfo: string): void {
    for (const reference of referenceHashParts(narinfo)) {
      if (reference === hashPart || this.ahead.has(reference) || !this.wanted(reference)) continue;
      if (this.ahead.size >= this.limits.maxEntries) this.ahead.delete(this.ahead.keys().next().value!);
      const answer = this.lookup(reference);
      // Nobody may ever take it: a failure must not become an unhandled rejection.
      answer.catch(() => undefined);
      this.ahead.set(reference, { answer, at: this.now() });
      this.fetched++;
    }
  }

  /** Whether an answer for this path was fetched ahead (or is being fetched), old or not. */
  has(hashPart: string): boolean {
    return this.ahead.has(hashPart);
  }

  /** The answer fetched ahead for this path, if any and not too old; handed over once. */
  take(hashPart: string): Promise<A | undefined> | undefined {
    const entry = this.ahead.get(hashPart);
    if (!entry) return undefined;
    this.ahead.delete(hashPart);
    if (this.now() - entry.at > this.limits.ttlMs) return undefined;
    this.served++;
    return entry.answer;
  }

  clear(): void {
    this.ahead.clear();
  }
}
