/**
 * What Nix sees in GitHub cache mode: the restored pack as a binary cache. A narinfo lookup waits
 * for the pack's index only (or for the answer that there is no pack); a NAR waits until its own
 * bytes passed the NarHash check. Narinfos are signed with this job's own key, which only this
 * job's nix.conf trusts. A NAR that fails its check, or any of a pack found corrupt, is never
 * served: the lookup answers 404 and Nix (with `fallback`) builds.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished } from 'node:stream/promises';
import { HttpError } from '../../contracts/http-error.js';
import { serializeNarInfo } from '../../nix/narinfo.js';
import { fingerprint, signFingerprint, type SecretKey } from '../../nix/signing.js';
import type { Logger } from '../report/daemon-log.js';
import { methodNotAllowed, NIX_CACHE_INFO } from '../pull/nix-routes.js';
import type { Stats } from '../report/stats.js';
import type { PackEntry } from './format.js';
import type { PackReader } from './reader.js';

const NARINFO_PATH = /^\/([0-9a-df-np-sv-z]{32})\.narinfo$/;
const NAR_PATH = /^\/nar\/([0-9a-df-np-sv-z]{52})\.nar\.zst$/;

export class PackRoutes {
  /** Store paths whose NAR Nix took from the pack, with when: the pack's recently used paths. */
  readonly used = new Map<string, number>();
  usedBytes = 0;

  constructor(
    /** The restored pack, or undefined once it is known there is none (or it could not be read). */
    private readonly pack: Promise<PackReader | undefined>,
    private readonly key: SecretKey,
    private readonly stats: Stats,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  close(): void {
    void this.pack.then((reader) => reader?.close());
  }

  async handle(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean> {
    const method = req.method ?? 'GET';
    const readOnly = (): void => {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, 'GET, HEAD');
    };
    if (pathname === '/nix-cache-info') {
      readOnly();
      return (this.send(res, 200, 'text/x-nix-cache-info', NIX_CACHE_INFO), true);
    }
    const narinfo = NARINFO_PATH.exec(pathname);
    if (narinfo) {
      readOnly();
      await this.narinfo(narinfo[1]!, res);
      return true;
    }
    const nar = NAR_PATH.exec(pathname);
    if (nar) {
      readOnly();
      await this.nar(nar[1]!, res);
      return true;
    }
    return false;
  }

  private send(res: ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  private async narinfo(hashPart: string, res: ServerResponse): Promise<void> {
    const reader = await this.pack;
    const entry = reader?.entryForHashPart(hashPart);
    if (!entry) {
      this.stats.misses++;
      this.stats.paths.miss(hashPart);
      return this.send(res, 404, 'text/plain; charset=utf-8', 'not in the pack\n');
    }
    this.stats.hits++;
    const narinfo = this.signedNarInfo(entry);
    // Distinct paths for the summary and the hits/misses outputs, as the server's routes count them.
    this.stats.paths.hit(hashPart, narinfo);
    this.send(res, 200, 'text/x-nix-narinfo', narinfo);
  }

  signedNarInfo(entry: PackEntry): string {
    const sig = signFingerprint(
      fingerprint(entry.path, entry.narHash, entry.narSize, entry.references),
      this.key,
    );
    return serializeNarInfo({
      storePath: entry.path,
      url: `nar/${entry.narHash.nix32}.nar.zst`,
      compression: 'zstd',
      fileSize: entry.size,
      narHash: entry.narHash,
      narSize: entry.narSize,
      references: entry.references,
      ...(entry.deriver ? { deriver: entry.deriver } : {}),
      ...(entry.ca ? { ca: entry.ca } : {}),
      sigs: [sig],
      extra: [],
    });
  }

  private async nar(narHash: string, res: ServerResponse): Promise<void> {
    const reader = await this.pack;
    const entry = reader?.entryForNarHash(narHash);
    if (!reader || !entry) throw new HttpError(404, 'NAR not in the pack', 'not_found');
    try {
      await reader.verified(entry);
    } catch (e) {
      this.stats.error(`the restored pack was not served further: ${(e as Error).message}`);
      this.log.warn({ path: entry.path, err: (e as Error).message }, 'pack NAR refused');
      throw new HttpError(404, 'NAR not served: the pack failed its check', 'corrupt');
    }
    res.writeHead(200, { 'content-type': 'application/x-nix-nar', 'content-length': entry.size });
    if (res.req.method === 'HEAD') {
      res.end();
      return;
    }
    try {
      await reader.send(entry, res, (n) => (this.stats.bytesDownloaded += n));
      res.end();
      await finished(res);
      this.stats.paths.narServed(`/nar/${narHash}.nar.zst`);
      if (!this.used.has(entry.path)) this.usedBytes += entry.size;
      this.used.set(entry.path, this.now());
    } catch (e) {
      this.log.warn({ path: entry.path, err: (e as Error).message }, 'pack NAR download broke off');
      res.destroy();
    }
  }
}
