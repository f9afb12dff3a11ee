/**
 * The job's cache use counted in distinct store paths, not lookups: Nix asks for a narinfo more
 * than once (a path's referrers, `nix copy`'s checks), so lookups overstate what came from the
 * cache. A path is "found" once the server had its narinfo, "not found" when it never did; it is
 * "downloaded" once Nix fetched its NAR. The largest downloaded and pushed paths are kept for the
 * summary.
 */
import type { PathSize, PathStatsJson } from '../../contracts/control-api.js';

/** How many of the largest paths the stats keep. */
export const LARGEST_KEPT = 10;

/** The `n` largest, largest first. */
class Largest {
  private readonly items: PathSize[] = [];

  add(item: PathSize): void {
    if (this.items.length === LARGEST_KEPT && item.bytes <= this.items.at(-1)!.bytes) return;
    const at = this.items.findIndex((other) => other.bytes < item.bytes);
    this.items.splice(at === -1 ? this.items.length : at, 0, item);
    if (this.items.length > LARGEST_KEPT) this.items.pop();
  }

  list(): PathSize[] {
    return [...this.items];
  }
}

/** The fields a hit is counted by, each pattern made once (not per lookup). */
const FIELDS = {
  URL: /^URL: (.*)$/m,
  StorePath: /^StorePath: (.*)$/m,
  FileSize: /^FileSize: (.*)$/m,
  NarSize: /^NarSize: (.*)$/m,
};
const field = (narinfo: string, name: keyof typeof FIELDS) => FIELDS[name].exec(narinfo)?.[1];

export class PathStats {
  private readonly found = new Set<string>();
  private readonly notFound = new Set<string>();
  /** NAR request path → the path it belongs to, from the narinfos answered. */
  private readonly narOwners = new Map<string, PathSize>();
  private readonly downloaded = new Set<string>();
  private downloadedBytes = 0;
  private readonly largestDownloaded = new Largest();
  private readonly largestPushed = new Largest();

  /** The server had this narinfo (the text served to Nix). */
  hit(hashPart: string, narinfo: string): void {
    this.found.add(hashPart);
    this.notFound.delete(hashPart);
    const url = field(narinfo, 'URL');
    const path = field(narinfo, 'StorePath');
    const bytes = Number(field(narinfo, 'FileSize') ?? field(narinfo, 'NarSize') ?? 0);
    if (url && path) this.narOwners.set(`/${url}`, { path, bytes });
  }

  /** The cache could not answer with this narinfo (not there, or the server failed). */
  miss(hashPart: string): void {
    if (!this.found.has(hashPart)) this.notFound.add(hashPart);
  }

  /** Nix fetched this NAR (`/nar/…`) whole. */
  narServed(narPath: string): void {
    const owner = this.narOwners.get(narPath);
    if (!owner || this.downloaded.has(owner.path)) return;
    this.downloaded.add(owner.path);
    this.downloadedBytes += owner.bytes;
    this.largestDownloaded.add(owner);
  }

  pushed(path: string, bytes: number): void {
    this.largestPushed.add({ path, bytes });
  }

  toJSON(): PathStatsJson {
    return {
      found: this.found.size,
      notFound: this.notFound.size,
      downloaded: this.downloaded.size,
      downloadedBytes: this.downloadedBytes,
      largestDownloaded: this.largestDownloaded.list(),
      largestPushed: this.largestPushed.list(),
    };
  }
}
