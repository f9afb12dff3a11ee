/**
 * BlobStore on an S3-compatible bucket. A put streams: bytes gather into parts of `partSize` and
 * each full part is uploaded while the next fills; a body that fits one part goes as one
 * PutObject. Either way the object appears only when complete (S3 never shows a multipart upload
 * before CompleteMultipartUpload), and a body that fails (a failed check, a dropped connection)
 * aborts the multipart upload, so nothing is left. Put-if-absent is `If-None-Match: *`.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ObjectPresigner } from './s3-presigner.js';
import type { Readable, Writable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { written } from '../../nix/buffer-pool.js';
import {
  isNarBlobKey,
  isValidBlobKey,
  type BlobInfo,
  type BlobReader,
  type BlobStore,
  type ByteRange,
} from './blob-store.js';
import { defaultPartBuffers } from '../config/storage-config.js';
import { PartBuffers, PartPool } from './part-buffers.js';
import { createS3Client, isNotFound, isPreconditionFailed, guarded, type S3Location } from './s3-client.js';

export interface S3BlobStoreOptions extends S3Location {
  /** Bytes per multipart part (S3's minimum is 5 MiB); at most two parts per upload are in memory. */
  partSize: number;
  /** Bytes of part buffers all uploads together may hold (at least `partSize`). */
  partBuffers?: number;
}

/**
 * The CRC32 a part or object travels with (`x-amz-checksum-crc32`, base64 of the big-endian
 * value): the body itself is not in the signature (UNSIGNED-PAYLOAD, s3-client.ts), and this is
 * ~3× cheaper than the SHA-256 SigV4 would compute. docs/operations.md says why.
 */
export function checksumCrc32(bytes: Buffer): string {
  const value = Buffer.allocUnsafe(4);
  value.writeUInt32BE(crc32(bytes));
  return value.toString('base64');
}

export const MIN_PART_SIZE = 5 * 1024 ** 2;

export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  private readonly presigner: ObjectPresigner;
  /** Multipart uploads this process is writing now: never taken for abandoned ones. */
  readonly uploading = new Set<string>();
  /** Shared by every upload of this store: what keeps many large uploads within memory. */
  readonly partPool: PartPool;

  constructor(readonly options: S3BlobStoreOptions) {
    if (options.partSize < MIN_PART_SIZE)
      throw new Error(`part size must be at least ${MIN_PART_SIZE} bytes`);
    this.partPool = new PartPool(
      options.partSize,
      options.partBuffers ?? defaultPartBuffers(options.partSize),
    );
    this.client = createS3Client(options);
    this.presigner = new ObjectPresigner(this.client, options.bucket);
  }

  /** Checks that the bucket exists and the credentials may use it; throws the SDK's error if not. */
  async checkBucket(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
  }

  objectKey(key: string): string {
    if (!isValidBlobKey(key)) throw new Error(`invalid blob key '${key}'`);
    return `${this.options.prefix}${key}`;
  }

  async put(key: string, body: AsyncIterable<Buffer>): Promise<'created' | 'exists'> {
    const objectKey = this.objectKey(key);
    const chunks = body[Symbol.asyncIterator]();
    const upload = new PartUploader(this, objectKey);
    const parts = new PartBuffers(this.partPool, () => upload.sent());
    try {
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
        for (let chunk = next.value; chunk.length > 0;) {
          // Copied: the body reuses a chunk's buffer once the next chunk is asked for.
          chunk = chunk.subarray(await parts.fill(chunk));
          if (!parts.full) continue;
          // More than one part: asked before any is sent, so a stored NAR is not sent again. A
          // body of one part goes as one PutObject, whose If-None-Match answers the same question.
          if (!upload.started && (await this.head(key)) !== null) {
            // The rest is only read (and checked): its buffers are another upload's to use.
            parts.release();
            for (next = await chunks.next(); !next.done; next = await chunks.next());
            return 'exists';
          }
          await upload.addPart(parts.take());
        }
      }
      const rest = parts.take();
      if (!upload.started) return await this.putWhole(objectKey, rest);
      if (rest.length > 0) await upload.addPart(rest);
      return await upload.complete();
    } catch (error) {
      await chunks.return?.().catch(() => undefined);
      await upload.abort();
      throw error;
    } finally {
      parts.release();
    }
  }

  private async putWhole(objectKey: string, bytes: Buffer): Promise<'created' | 'exists'> {
    try {
      await guarded(
        this.client.send(
          new PutObjectCommand({
            Bucket: this.options.bucket,
            Key: objectKey,
            Body: bytes,
            ContentLength: bytes.length,
            ChecksumCRC32: checksumCrc32(bytes),
            IfNoneMatch: '*',
          }),
        ),
      );
      return 'created';
    } catch (error) {
      if (isPreconditionFailed(error)) return 'exists';
      throw error;
    }
  }

  async open(key: string, range?: ByteRange): Promise<BlobReader | null> {
    try {
      const answer = await guarded(
        this.client.send(
          new GetObjectCommand({
            Bucket: this.options.bucket,
            Key: this.objectKey(key),
            ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          }),
        ),
      );
      return new ObjectReader(answer.Body as Readable, answer.ContentLength ?? 0);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const answer = await guarded(
        this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) })),
      );
      return { size: answer.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /** A URL that GETs the object without credentials for `ttlSeconds` (SigV4 query signing, no request made). */
  presignedGetUrl(key: string, ttlSeconds: number): Promise<string> {
    return this.presigner.presignGet(this.objectKey(key), ttlSeconds);
  }

  async delete(key: string): Promise<void> {
    await guarded(
      this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) })),
    );
  }

  /** Every object under the prefix named as a NAR file, a page (1000) at a time. */
  async *list(skip: (key: string) => boolean = () => false): AsyncIterable<BlobInfo> {
    const { bucket, prefix } = this.options;
    let token: string | undefined;
    do {
      const page = await guarded(
        this.client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        ),
      );
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(prefix.length);
        if (key === undefined || !isNarBlobKey(key) || !object.LastModified || skip(key)) continue;
        yield { key, size: object.Size ?? 0, modifiedAt: object.LastModified };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Aborts multipart uploads of NAR files under the prefix begun before `before`: those a replica
   * killed mid-upload left behind (they are never visible, but the store keeps their parts).
   * Returns how many it aborted.
   */
  async abortIncompleteUploads(before: Date): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await guarded(
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.options.bucket,
            Prefix: this.options.prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ),
      );
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated >= before) continue;
        if (!isNarBlobKey(upload.Key.slice(this.options.prefix.length))) continue;
        if (this.uploading.has(upload.UploadId)) continue;
        await guarded(
          this.client.send(
            new AbortMultipartUploadCommand({
              Bucket: this.options.bucket,
              Key: upload.Key,
              UploadId: upload.UploadId,
            }),
          ),
        ).catch((error: unknown) => {
          if (!isNotFound(error)) throw error;
        });
        aborted++;
      }
      if (!page.IsTruncated) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** One multipart upload: a part uploads while the next gathers; at most one is in flight. */
class PartUploader {
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly store: S3BlobStore,
    private readonly objectKey: string,
  ) {}

  get started(): boolean {
    return this.uploadId !== undefined;
  }

  private get bucket(): string {
    return this.store.options.bucket;
  }

  async addPart(bytes: Buffer): Promise<void> {
    if (!this.uploadId) {
      const created = await guarded(
        this.store.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: this.objectKey,
            ChecksumAlgorithm: 'CRC32',
          }),
        ),
      );
      this.uploadId = created.UploadId;
      if (this.uploadId) this.store.uploading.add(this.uploadId);
    }
    // The previous part must be stored before another is sent: two parts in memory at most.
    await this.inFlight;
    const partNumber = this.parts.length + 1;
    const part: CompletedPart = { PartNumber: partNumber, ChecksumCRC32: checksumCrc32(bytes) };
    this.parts.push(part);
    this.inFlight = guarded(
      this.store.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: this.objectKey,
          UploadId: this.uploadId,
          PartNumber: partNumber,
          Body: bytes,
          ContentLength: bytes.length,
          ChecksumCRC32: part.ChecksumCRC32,
        }),
      ),
    ).then((answer) => {
      part.ETag = answer.ETag;
    });
    // Its failure is taken up by the next addPart or complete; until then it is not unhandled.
    this.inFlight.catch(() => undefined);
  }

  /** Resolves once the part sent last is stored (or has failed: addPart or complete reports it). */
  async sent(): Promise<void> {
    await this.inFlight?.catch(() => undefined);
  }

  async complete(): Promise<'created' | 'exists'> {
    await this.inFlight;
    try {
      await guarded(
        this.store.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: this.objectKey,
            UploadId: this.uploadId,
            MultipartUpload: { Parts: this.parts },
            IfNoneMatch: '*',
          }),
        ),
      );
      this.store.uploading.delete(this.uploadId!);
      this.uploadId = undefined;
      return 'created';
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error;
      await this.abort();
      return 'exists';
    }
  }

  /** Drops the parts sent so far; best effort (a sweep at start collects what this misses). */
  async abort(): Promise<void> {
    if (!this.uploadId) return;
    const uploadId = this.uploadId;
    this.uploadId = undefined;
    this.store.uploading.delete(uploadId);
    await this.inFlight?.catch(() => undefined);
    await this.store.client
      .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.objectKey, UploadId: uploadId }))
      .catch(() => undefined);
  }
}

/** A GetObject answer's body, written out with the destination's backpressure. */
class ObjectReader implements BlobReader {
  constructor(
    private readonly body: Readable,
    readonly length: number,
  ) {}

  async writeTo(sink: Writable, sent?: (bytes: number) => void): Promise<void> {
    try {
      for await (const chunk of this.body as AsyncIterable<Buffer>) {
        await written(sink, chunk);
        sent?.(chunk.length);
      }
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    this.body.destroy();
  }
}
