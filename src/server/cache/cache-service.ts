/**
 * The Nix binary cache as a service, free of HTTP: lookups in the union of readable slices, NAR
 * uploads verified on their way into the BlobStore, narinfos checked against what their slice
 * uploaded, slice ownership, signing. The HTTP handlers (src/server/http/cache-handlers.ts) only
 * read requests and write answers; storage backends plug in as BlobStore and MetadataStore.
 */
import { Writable } from 'node:stream';
import { HttpError } from '../../contracts/http-error.js';
import { FileHasher } from '../../nix/file-hash.js';
import { Hash } from '../../nix/hash.js';
import type { NarLimits } from '../../nix/nar-hasher.js';
import { narFileName } from '../../nix/nar-url.js';
import type { NarCompression } from '../../nix/nar.js';
import type { NarInfo } from '../../nix/narinfo.js';
import type { ServerMetrics } from '../metrics.js';
import type { ReadRecorder } from '../retention/access.js';
import type { Logger } from '../server-log.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataStore, SliceFilter } from '../storage/metadata-store.js';
import { markNarInUse } from './nar-in-use.js';
import { verifyNarUpload, type NarUploadName } from './nar-verifier.js';
import type { VerifyPool } from './verify-pool.js';
import { checkNarInfo } from './narinfo-check.js';
import { lookupNarInfos } from './narinfo-lookup.js';
import { NarInfoSetIndex } from './narinfo-set-index.js';
import { RecentNarInfos } from './recent-narinfos.js';
import type { NarInfoSigner } from './narinfo-signer.js';
import { addPin, type PinOutcome, type PinRequest } from './pins.js';
import { checkSliceOwner, type Writer } from './slice-owner.js';
import type { SliceRank } from './union-read.js';
import { toNarFacts, type VerifiedNar } from './verified-nar.js';

export interface CacheServiceDeps {
  blobs: BlobStore;
  meta: MetadataStore;
  narinfoSigner: NarInfoSigner;
  /** What a NAR upload may be: its size (as uploaded and inflated), ratio, decoder memory. */
  narLimits: NarLimits;
  /** The worker threads that hash, decompress and check uploads. */
  verifiers: VerifyPool;
  metrics: ServerMetrics;
  log: Logger;
  /** When set, NAR GETs answer with a redirect to this URL (a presigned one, working `ttlSeconds`) after the same checks. */
  narRedirect?: (key: string, ttlSeconds: number) => Promise<string>;
  /** How long the URLs of `narRedirect` work. */
  narRedirectTtlSeconds?: number;
  /** Where nginx finds NAR files (`storage.blobs.x_accel_redirect`), when it sends them. */
  narAccelPrefix?: string;
  /** The server's clock (ms): access times and pushes are recorded with it (injectable for tests). */
  now: () => number;
  /** Records reads for retention's `max_age`, batched (src/server/retention/access.ts). */
  reads: ReadRecorder;
}

/** Who reads: the slices a request may see and their precedence, and the slice it writes (HEAD answers from that one). */
export interface Reader {
  canRead: SliceFilter;
  rank: SliceRank;
  write: string | null;
  /** The write slice is a template's: it holds it only while bound to the reader (or unbound). */
  bindWrite: boolean;
}

/** A NAR upload: its blob key, compression and the hash its name states. */
export interface NarUpload {
  key: string;
  compression: NarCompression;
  name: NarUploadName;
}

export class CacheService {
  private readonly sets: NarInfoSetIndex;
  private readonly recent: RecentNarInfos;

  constructor(private readonly deps: CacheServiceDeps) {
    this.sets = new NarInfoSetIndex(deps.meta);
    this.recent = new RecentNarInfos(deps);
  }

  /** The narinfo set of the reader's slices (src/contracts/narinfo-set.ts): whole, or what came after `since`. */
  narInfoSet(reader: Reader, since: string | null): Promise<{ body: Buffer; count: number }> {
    return since === null ? this.sets.full(reader.canRead) : this.sets.since(reader.canRead, since);
  }

  /** The narinfos of the reader's slices used last, newest first (recent-narinfos.ts). */
  async recentNarInfos(reader: Reader): Promise<Record<string, string>> {
    const readable = await this.sets.readable(reader.canRead);
    return this.recent.answer(reader, readable, this.sets.version);
  }

  get maxNarSize(): number {
    return this.deps.narLimits.maxNarSize;
  }

  /** The signed narinfo of `hashPart` in a readable slice, or undefined. */
  async narInfo(hashPart: string, reader: Reader): Promise<string | undefined> {
    const record = (await lookupNarInfos(this.deps, reader, [hashPart])).get(hashPart);
    this.deps.metrics.narinfoLookups.inc({ result: record ? 'hit' : 'miss' });
    return record ? this.deps.narinfoSigner.served(record) : undefined;
  }

  /** The signed narinfos of the readable hits among `hashParts`. */
  async narInfos(hashParts: string[], reader: Reader): Promise<Record<string, string>> {
    const records = await lookupNarInfos(this.deps, reader, hashParts);
    const narinfos: Record<string, string> = {};
    for (const [hashPart, record] of records) narinfos[hashPart] = this.deps.narinfoSigner.served(record);
    const { narinfoLookups } = this.deps.metrics;
    if (records.size > 0) narinfoLookups.inc({ result: 'hit' }, records.size);
    if (hashParts.length > records.size)
      narinfoLookups.inc({ result: 'miss' }, hashParts.length - records.size);
    return narinfos;
  }

  /**
   * Whether the reader may see this NAR. Readers see NARs a readable narinfo points to. A writer's
   * HEAD answers from its own slice: if it said yes for a NAR only another slice holds, `nix copy`
   * would skip the upload and the narinfo would then be refused for lack of it.
   */
  async narVisible(reader: Reader, key: string, head: boolean): Promise<boolean> {
    const { meta } = this.deps;
    const write = reader.write;
    const ownUpload = async (): Promise<boolean> =>
      write !== null &&
      (await meta.uploadedNar(write, key)) !== null &&
      (await this.holdsWriteSlice(reader, write));
    // A writer that sees the NAR will not upload it: mark it used so a collector leaves it alone
    // (or, when one is deleting it right now, say no so the writer uploads it again).
    if (head && write !== null)
      return (await ownUpload()) && (await meta.touchNar(key, new Date(this.deps.now())));
    // A download is nearly always of a NAR a readable narinfo points to: one query, asked first.
    return (await meta.isNarReadable(key, reader.canRead)) || (await ownUpload());
  }

  /** Those of `slices` the reader may read (their names included: metrics are filtered by it). */
  async readableSlices(reader: Reader, slices: readonly string[]): Promise<Set<string>> {
    const owners = await this.deps.meta.sliceOwners(slices);
    return new Set(slices.filter((slice) => reader.canRead(slice, owners.get(slice) ?? null)));
  }

  /** Whether the write slice is this writer's: not bound yet, or bound to its issuer and repository. */
  private async holdsWriteSlice(reader: Reader, slice: string): Promise<boolean> {
    if (!reader.bindWrite) return true;
    const owner = await this.deps.meta.sliceOwner(slice);
    return owner === null || reader.rank(slice, owner) === 0;
  }

  get blobs(): BlobStore {
    return this.deps.blobs;
  }

  /**
   * Where a visible NAR's bytes are to be fetched instead of from this server (a presigned URL),
   * if anywhere. The URL stops working by `notAfter` (seconds since the epoch: the token's
   * expiry, or a shorter link's), so it never outlives the right it was made from.
   */
  narRedirectUrl(key: string, notAfter?: number): Promise<string | undefined> {
    const { narRedirect, narRedirectTtlSeconds = 0 } = this.deps;
    if (!narRedirect) return Promise.resolve(undefined);
    const left = notAfter === undefined ? Infinity : notAfter - Math.floor(this.deps.now() / 1000);
    // SigV4 wants at least a second; a token this close to its end fails its next request anyway.
    return narRedirect(key, Math.max(1, Math.min(narRedirectTtlSeconds, left)));
  }

  /** The `X-Accel-Redirect` that has nginx send a visible NAR's file, when nginx sends them. */
  narAccelPath(key: string): string | undefined {
    const prefix = this.deps.narAccelPrefix;
    return prefix === undefined ? undefined : `${prefix}${key}`;
  }

  /** How long the URLs of `narRedirectUrl` work, when there are any. */
  get narRedirectTtlSeconds(): number | undefined {
    return this.deps.narRedirect ? this.deps.narRedirectTtlSeconds : undefined;
  }

  countBytesOut(bytes: number): void {
    this.deps.metrics.bytesOut.inc(bytes);
  }

  /** The checks a write passes before its body is read: the slice is the writer's to write. */
  checkWriter(writer: Writer): Promise<void> {
    return checkSliceOwner(this.deps.meta, writer, false);
  }

  /** Pins paths of the writer's slice (with their closures, as the collector keeps them). */
  pin(writer: Writer, pin: PinRequest): Promise<PinOutcome> {
    return addPin(this.deps, writer, pin);
  }

  /** Before an upload's body is read: marks its NAR used, waiting while a collector deletes it. */
  markNarInUse(key: string): Promise<void> {
    return markNarInUse(this.deps.meta, key, this.deps.now);
  }

  /**
   * Streams an upload through the verification into the BlobStore and records it for the writer's
   * slice. The outcome depends only on the slice's own uploads: `exists` if it had uploaded this
   * NAR before, else `created`, whether or not another slice holds the same file (which a writer
   * must not learn).
   */
  async storeNar(
    writer: Writer,
    upload: NarUpload,
    body: AsyncIterable<Buffer>,
  ): Promise<{ outcome: 'created' | 'exists'; nar: VerifiedNar }> {
    const { blobs, meta, metrics, log, narLimits } = this.deps;
    const hadIt = (await meta.uploadedNar(writer.slice, upload.key)) !== null;
    const received = new ReceiveWatch(body);
    const verified = verifyNarUpload(
      received.body,
      { ...upload.name, compression: upload.compression, limits: narLimits },
      this.deps.verifiers,
    );
    let outcome: 'created' | 'exists';
    try {
      outcome = await blobs.put(upload.key, verified.body);
    } catch (error) {
      if (error instanceof HttpError) throw error;
      // The client's side failed (it went away mid-body), not the store: whatever the store made of
      // that, the answer says what happened. A store's own failure (a full disk, a broken bucket)
      // is its own error, 5xx, even though the request was cut short after it.
      if (received.failed) {
        throw new HttpError(400, 'the upload ended before its body was complete', 'truncated');
      }
      throw error;
    }
    const digest = verified.digest();
    metrics.bytesIn.inc(digest.fileSize);
    // A key named by FileHash holds these very bytes. One named by NarHash is the slice's own
    // (narHashKey), but may hold other bytes it uploaded before (another compressor or level): the
    // narinfo must describe the file that is served, so that one is measured (and hashed if wanted).
    const { name } = upload;
    const stored =
      outcome === 'exists' && 'narHash' in name ? await this.storedFile(upload.key, name.hashFile) : digest;
    const nar: VerifiedNar = {
      key: upload.key,
      compression: upload.compression,
      ...(stored.fileHash && { fileHash: stored.fileHash }),
      fileSize: stored.fileSize,
      narHash: digest.narHash,
      narSize: digest.narSize,
    };
    await meta.recordUpload(writer.slice, toNarFacts(nar));
    log.info(
      { slice: writer.slice, nar: upload.key, fileSize: nar.fileSize, stored: outcome },
      'NAR uploaded',
    );
    return { outcome: hadIt ? 'exists' : 'created', nar };
  }

  private async storedFile(key: string, hashFile: boolean): Promise<{ fileHash?: Hash; fileSize: number }> {
    const vanished = () => new Error(`NAR file ${key} vanished while being uploaded again`);
    if (!hashFile) {
      const head = await this.deps.blobs.head(key);
      if (!head) throw vanished();
      return { fileSize: head.size };
    }
    const body = await this.deps.blobs.open(key);
    if (!body) throw vanished();
    const hasher = new FileHasher();
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        hasher.update(chunk);
        done();
      },
    });
    await body.writeTo(sink);
    return hasher.digest();
  }

  /** Checks an uploaded narinfo (parsed once, by the caller) and stores it for the writer's slice. */
  async storeNarInfo(writer: Writer, hashPart: string, info: NarInfo): Promise<'created' | 'exists'> {
    const { meta, log, narinfoSigner } = this.deps;
    const { slice, identity } = writer;
    const nar = await checkNarInfo(this.deps, slice, hashPart, info);
    await checkSliceOwner(meta, writer, true);
    const now = new Date(this.deps.now());
    // The references this path needs in the slice count as used now, so a collection running at
    // this moment keeps them (its batch that holds one of them is refused).
    await meta.touchNarInfos(
      info.references.map((name) => ({ slice, hashPart: name.slice(0, 32) })),
      now,
    );
    // A FileHash stated is the server's own (checkNarInfo); one left out is added if the server has one.
    const stored: NarInfo = { ...info, url: `nar/${nar.key}`, fileSize: nar.fileSize, sigs: [] };
    if (nar.fileHash) stored.fileHash = nar.fileHash;
    // Signed once here, from the narinfo parsed once, so the lookups that follow need not.
    const signed = narinfoSigner.signForStorage(stored);
    const outcome = await meta.putNarInfo(
      {
        slice,
        hashPart,
        storePath: info.storePath,
        narKey: nar.key,
        narinfo: signed.narinfo,
        signedBy: signed.signedBy,
        createdAt: now,
      },
      {
        ...identity,
        time: now,
        slice,
        storePath: info.storePath,
        narSize: nar.narSize,
        fileSize: nar.fileSize,
      },
    );
    if (outcome === 'nar_missing')
      throw new HttpError(
        400,
        `its NAR ${info.url} was removed by the collector meanwhile: upload it again`,
        'nar_missing',
      );
    log.info(
      { slice, storePath: info.storePath, stored: outcome, repository: identity.repository },
      'narinfo uploaded',
    );
    return outcome;
  }
}

export type { Writer } from './slice-owner.js';

/** A request body, and whether reading it failed (the client's side) rather than what consumed it. */
class ReceiveWatch {
  failed = false;
  readonly body: AsyncIterable<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.body = this.watched(source);
  }

  private async *watched(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      yield* source;
    } catch (error) {
      this.failed = true;
      throw error;
    }
  }
}

/**
 * The blob key of a NAR uploaded by its NarHash: one per slice and NAR. Keyed by the NarHash alone,
 * the first slice to upload a NAR would choose the bytes (and their size) every later uploader's
 * narinfo must describe, and a 200 would tell the next uploader that someone holds it. A file
 * named by its FileHash (Nix's uploads) is shared: the same name means the same bytes.
 */
export function narHashKey(slice: string, narHash: string, compression: NarCompression): string {
  const hash = Hash.of('sha256', Buffer.from(`sluice nar upload\0${slice}\0${narHash}`));
  return narFileName(hash.nix32, compression);
}
