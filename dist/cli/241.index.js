export const id = 241;
export const ids = [241,495];
export const modules = {

/***/ 8505:
/***/ ((__unused_webpack_module, exports, __webpack_require__) => {

const { formatUrl } = __webpack_require__(519);
const { getEndpointFromInstructions } = __webpack_require__(2085);
const { HttpRequest } = __webpack_require__(3422);
const { SignatureV4MultiRegion } = __webpack_require__(5785);

const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
const SHA256_HEADER = "X-Amz-Content-Sha256";

class S3RequestPresigner {
    signer;
    constructor(options) {
        const resolvedOptions = {
            service: options.signingName || options.service || "s3",
            uriEscapePath: options.uriEscapePath || false,
            applyChecksum: options.applyChecksum || false,
            ...options,
        };
        this.signer = new SignatureV4MultiRegion(resolvedOptions);
    }
    presign(requestToSign, { unsignableHeaders = new Set(), hoistableHeaders = new Set(), unhoistableHeaders = new Set(), ...options } = {}) {
        this.prepareRequest(requestToSign, {
            unsignableHeaders,
            unhoistableHeaders,
            hoistableHeaders,
        });
        return this.signer.presign(requestToSign, {
            expiresIn: 900,
            unsignableHeaders,
            unhoistableHeaders,
            ...options,
        });
    }
    presignWithCredentials(requestToSign, credentials, { unsignableHeaders = new Set(), hoistableHeaders = new Set(), unhoistableHeaders = new Set(), ...options } = {}) {
        this.prepareRequest(requestToSign, {
            unsignableHeaders,
            unhoistableHeaders,
            hoistableHeaders,
        });
        return this.signer.presignWithCredentials(requestToSign, credentials, {
            expiresIn: 900,
            unsignableHeaders,
            unhoistableHeaders,
            ...options,
        });
    }
    prepareRequest(requestToSign, { unsignableHeaders = new Set(), unhoistableHeaders = new Set(), hoistableHeaders = new Set(), } = {}) {
        unsignableHeaders.add("content-type");
        Object.keys(requestToSign.headers)
            .map((header) => header.toLowerCase())
            .filter((header) => header.startsWith("x-amz-server-side-encryption"))
            .forEach((header) => {
            if (!hoistableHeaders.has(header)) {
                unhoistableHeaders.add(header);
            }
        });
        requestToSign.headers[SHA256_HEADER] = UNSIGNED_PAYLOAD;
        const currentHostHeader = requestToSign.headers.host;
        const port = requestToSign.port;
        const expectedHostHeader = `${requestToSign.hostname}${requestToSign.port != null ? ":" + port : ""}`;
        if (!currentHostHeader || (currentHostHeader === requestToSign.hostname && requestToSign.port != null)) {
            requestToSign.headers.host = expectedHostHeader;
        }
    }
}

const getSignedUrl = async (client, command, options = {}) => {
    let s3Presigner;
    let region;
    if (typeof client.config.endpointProvider === "function") {
        const endpointV2 = await getEndpointFromInstructions(command.input, command.constructor, client.config);
        const authScheme = endpointV2.properties?.authSchemes?.[0];
        if (authScheme?.name === "sigv4a") {
            region = authScheme?.signingRegionSet?.join(",");
        }
        else {
            region = authScheme?.signingRegion;
        }
        s3Presigner = new S3RequestPresigner({
            ...client.config,
            signingName: authScheme?.signingName,
            region: async () => region,
        });
    }
    else {
        s3Presigner = new S3RequestPresigner(client.config);
    }
    const presignInterceptMiddleware = (next, context) => async (args) => {
        const { request } = args;
        if (!HttpRequest.isInstance(request)) {
            throw new Error("Request to be presigned is not an valid HTTP request.");
        }
        delete request.headers["amz-sdk-invocation-id"];
        delete request.headers["amz-sdk-request"];
        delete request.headers["x-amz-user-agent"];
        let presigned;
        const presignerOptions = {
            ...options,
            signingRegion: options.signingRegion ?? context["signing_region"] ?? region,
            signingService: options.signingService ?? context["signing_service"],
        };
        if (context.s3ExpressIdentity) {
            presigned = await s3Presigner.presignWithCredentials(request, context.s3ExpressIdentity, presignerOptions);
        }
        else {
            presigned = await s3Presigner.presign(request, presignerOptions);
        }
        return {
            response: {},
            output: {
                $metadata: { httpStatusCode: 200 },
                presigned,
            },
        };
    };
    const middlewareName = "presignInterceptMiddleware";
    const clientStack = client.middlewareStack.clone();
    clientStack.addRelativeTo(presignInterceptMiddleware, {
        name: middlewareName,
        relation: "before",
        toMiddleware: "awsAuthMiddleware",
        override: true,
    });
    const handler = command.resolveMiddleware(clientStack, client.config, {});
    const { output } = await handler({ input: command.input });
    const { presigned } = output;
    return formatUrl(presigned);
};

exports.n = S3RequestPresigner;
exports.A = getSignedUrl;


/***/ }),

/***/ 241:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

// ESM COMPAT FLAG
__webpack_require__.r(__webpack_exports__);

// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  MIN_PART_SIZE: () => (/* binding */ MIN_PART_SIZE),
  S3BlobStore: () => (/* binding */ S3BlobStore),
  checksumCrc32: () => (/* binding */ checksumCrc32)
});

// EXTERNAL MODULE: ./node_modules/@aws-sdk/client-s3/dist-cjs/index.js
var dist_cjs = __webpack_require__(3711);
// EXTERNAL MODULE: ./node_modules/@aws-sdk/s3-request-presigner/dist-cjs/index.js
var s3_request_presigner_dist_cjs = __webpack_require__(8505);
;// CONCATENATED MODULE: ./src/server/storage/s3-presigner.ts
/**
 * Presigned GETs at the rate NAR links are asked for. The SDK's `getSignedUrl` resolves the
 * bucket's endpoint and runs the client's whole middleware stack for every URL (about 1 ms each on
 * the bench machine): a NAR links answer for a 200-path closure spent 0.2 s on it before Nix got
 * its first redirect. Here the endpoint is resolved once, by that same `getSignedUrl` for a
 * placeholder key, and each URL is then one SigV4 query signature by the SDK's own presigner
 * (about a tenth of the time).
 */


const PLACEHOLDER_KEY = 'k';
/** RFC 3986 escaping, as SigV4 canonicalises a path segment or a query value. */
function s3_presigner_escape(text) {
    return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
class ObjectPresigner {
    client;
    bucket;
    endpoint;
    constructor(client, bucket) {
        this.client = client;
        this.bucket = bucket;
    }
    /** A URL that GETs `objectKey` without credentials for `expiresIn` seconds. */
    async presignGet(objectKey, expiresIn) {
        const endpoint = await this.resolved();
        const { host } = endpoint;
        const request = {
            method: 'GET',
            protocol: endpoint.protocol,
            hostname: endpoint.hostname,
            ...(endpoint.port === undefined ? {} : { port: endpoint.port }),
            path: `${endpoint.pathPrefix}/${objectKey.split('/').map(s3_presigner_escape).join('/')}`,
            query: { 'x-id': 'GetObject' },
            headers: { host },
        };
        const signed = await endpoint.presigner.presign(request, {
            expiresIn,
            signingRegion: endpoint.region,
        });
        const query = Object.entries(signed.query ?? {})
            .flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((v) => v === null ? s3_presigner_escape(name) : `${s3_presigner_escape(name)}=${s3_presigner_escape(v)}`))
            .join('&');
        return `${endpoint.protocol}//${host}${signed.path}?${query}`;
    }
    resolved() {
        // A failed resolution (credentials not there yet) is tried again by the next link.
        this.endpoint ??= this.resolve().catch((error) => {
            this.endpoint = undefined;
            throw error;
        });
        return this.endpoint;
    }
    async resolve() {
        const sample = new URL(await (0,s3_request_presigner_dist_cjs/* getSignedUrl */.A)(this.client, new dist_cjs/* GetObjectCommand */.jLs({ Bucket: this.bucket, Key: PLACEHOLDER_KEY }), {
            expiresIn: 60,
        }));
        if (!sample.pathname.endsWith(`/${PLACEHOLDER_KEY}`))
            throw new Error(`unexpected presigned URL shape for bucket ${this.bucket}`);
        // X-Amz-Credential is <access key>/<date>/<region>/<service>/aws4_request.
        const scope = (sample.searchParams.get('X-Amz-Credential') ?? '').split('/');
        const [region, service] = [scope[2], scope[3]];
        if (!region || !service)
            throw new Error(`presigned URL without a credential scope for bucket ${this.bucket}`);
        return {
            protocol: sample.protocol,
            hostname: sample.hostname,
            port: sample.port === '' ? undefined : Number(sample.port),
            host: sample.host,
            pathPrefix: sample.pathname.slice(0, -(PLACEHOLDER_KEY.length + 1)),
            region,
            presigner: new s3_request_presigner_dist_cjs/* S3RequestPresigner */.n({
                ...this.client.config,
                signingName: service,
                region: () => Promise.resolve(region),
            }),
        };
    }
}

// EXTERNAL MODULE: external "node:zlib"
var external_node_zlib_ = __webpack_require__(8522);
// EXTERNAL MODULE: ./src/nix/buffer-pool.ts
var buffer_pool = __webpack_require__(6212);
// EXTERNAL MODULE: ./src/server/storage/blob-store.ts
var blob_store = __webpack_require__(382);
// EXTERNAL MODULE: ./src/server/config/storage-config.ts
var storage_config = __webpack_require__(5578);
;// CONCATENATED MODULE: ./src/server/storage/part-buffers.ts
/**
 * Memory for multipart parts on their way to S3. Each upload gathers its body in at most two part
 * buffers, used in turn (one fills while the other's part uploads). The buffers of whole parts
 * come from one server-wide `PartPool`, which allocates at most `limit` bytes of them and hands
 * them from upload to upload: many large uploads at once wait for a buffer instead of growing the
 * process past its memory target, and a freed 16 MiB buffer is reused rather than left for the
 * garbage collector (which frees such external memory late: RSS grew with every upload before).
 * Small bodies (most NARs) never touch the pool: their one buffer stays under `UNPOOLED_BYTES`.
 */

/** A body this small gathers in its own buffer (the upload slots bound how many do at once). */
const UNPOOLED_BYTES = 1024 * 1024;
/** Part buffers of `partSize` bytes, at most `limit` bytes of them; takers queue in order. */
class PartPool {
    partSize;
    limit;
    free = [];
    queue = [];
    allocated = 0;
    lent = 0;
    /** The most bytes lent out at once: what tests compare with `limit`. */
    peak = 0;
    constructor(partSize, limit) {
        this.partSize = partSize;
        this.limit = limit;
        if (limit < partSize)
            throw new Error('the part buffer budget must hold at least one part');
    }
    /** Bytes of buffers lent to uploads now. */
    get inUse() {
        return this.lent * this.partSize;
    }
    /** A buffer now, if there is one to spare and nobody waits before us. */
    tryTake() {
        if (this.queue.length > 0)
            return undefined;
        let buffer = this.free.pop();
        if (!buffer && (this.allocated + 1) * this.partSize <= this.limit) {
            buffer = Buffer.allocUnsafeSlow(this.partSize);
            this.allocated++;
        }
        if (buffer)
            this.lend();
        return buffer;
    }
    /** A buffer, waiting (in order) until another upload gives one back. */
    take() {
        const buffer = this.tryTake();
        return buffer ? Promise.resolve(buffer) : new Promise((grant) => this.queue.push(grant));
    }
    give(buffer) {
        this.lent--;
        const next = this.queue.shift();
        if (next) {
            this.lend();
            next(buffer);
        }
        else if (this.lent === 0) {
            // No upload needs them: the memory goes back until the next large upload.
            this.allocated -= this.free.length + 1;
            this.free.length = 0;
        }
        else {
            this.free.push(buffer);
        }
    }
    lend() {
        this.lent++;
        this.peak = Math.max(this.peak, this.inUse);
    }
}
/**
 * One upload's part buffers, filled in turn. The first grows as the body does, so a small NAR
 * never takes a whole part; once the body outgrows `UNPOOLED_BYTES` it waits for a buffer of the
 * pool. A second buffer is taken only if the pool has one to spare at once; otherwise the next
 * part gathers in the same buffer after the previous part has uploaded (`sent`). Waiting only for
 * the first buffer, never while holding one, keeps uploads from deadlocking on each other.
 */
class PartBuffers {
    pool;
    sent;
    current;
    other;
    filled = 0;
    /** The pool's buffers this upload holds (none, one or two). */
    pooled = [];
    constructor(pool, 
    /** Resolves once the part taken last is stored. */
    sent) {
        this.pool = pool;
        this.sent = sent;
    }
    get partSize() {
        return this.pool.partSize;
    }
    get full() {
        return this.filled === this.partSize;
    }
    /** Copies as much of `chunk` as the part has room for; returns how many bytes that was. */
    async fill(chunk) {
        const taken = Math.min(this.partSize - this.filled, chunk.length);
        const needed = this.filled + taken;
        if (!this.current || needed > this.current.length)
            await this.grow(needed);
        (0,buffer_pool/* copyInto */.s)(this.current, this.filled, chunk.subarray(0, taken));
        this.filled = needed;
        return taken;
    }
    /**
     * The bytes gathered, as a part; the other buffer (if any) gathers next. A part's buffer is
     * written into again only after the part has uploaded.
     */
    take() {
        const buffer = this.current ?? Buffer.alloc(0);
        const part = buffer.subarray(0, this.filled);
        this.current = this.other;
        this.other = buffer;
        this.filled = 0;
        return part;
    }
    /** Gives the pool's buffers back: once the upload is over (or only reads on), whatever its outcome. */
    release() {
        for (const buffer of this.pooled.splice(0))
            this.pool.give(buffer);
        this.current = this.other = undefined;
    }
    async grow(needed) {
        if (this.other?.length === this.partSize) {
            // After a part has been taken, the next part will be whole too (or the last).
            const second = this.pooled.length < 2 ? this.pool.tryTake() : undefined;
            if (second) {
                this.pooled.push(second);
                this.current = second;
            }
            else {
                // No buffer to spare: gather the next part in the one just sent, once it is stored.
                await this.sent();
                this.current = this.other;
                this.other = undefined;
            }
            return;
        }
        const size = Math.min(this.partSize, Math.max(2 * (this.current?.length ?? 0), needed, 256 * 1024));
        const grown = size > UNPOOLED_BYTES ? await this.pool.take() : Buffer.allocUnsafe(size);
        if (size > UNPOOLED_BYTES)
            this.pooled.push(grown);
        if (this.current)
            (0,buffer_pool/* copyInto */.s)(grown, 0, this.current.subarray(0, this.filled));
        this.current = grown;
    }
}

// EXTERNAL MODULE: ./src/server/storage/s3-client.ts
var s3_client = __webpack_require__(5495);
;// CONCATENATED MODULE: ./src/server/storage/s3-blob-store.ts
/**
 * BlobStore on an S3-compatible bucket. A put streams: bytes gather into parts of `partSize` and
 * each full part is uploaded while the next fills; a body that fits one part goes as one
 * PutObject. Either way the object appears only when complete (S3 never shows a multipart upload
 * before CompleteMultipartUpload), and a body that fails (a failed check, a dropped connection)
 * aborts the multipart upload, so nothing is left. Put-if-absent is `If-None-Match: *`.
 */








/**
 * The CRC32 a part or object travels with (`x-amz-checksum-crc32`, base64 of the big-endian
 * value): the body itself is not in the signature (UNSIGNED-PAYLOAD, s3-client.ts), and this is
 * ~3× cheaper than the SHA-256 SigV4 would compute. docs/operations.md says why.
 */
function checksumCrc32(bytes) {
    const value = Buffer.allocUnsafe(4);
    value.writeUInt32BE((0,external_node_zlib_.crc32)(bytes));
    return value.toString('base64');
}
const MIN_PART_SIZE = 5 * 1024 ** 2;
class S3BlobStore {
    options;
    client;
    presigner;
    /** Multipart uploads this process is writing now: never taken for abandoned ones. */
    uploading = new Set();
    /** Shared by every upload of this store: what keeps many large uploads within memory. */
    partPool;
    constructor(options) {
        this.options = options;
        if (options.partSize < MIN_PART_SIZE)
            throw new Error(`part size must be at least ${MIN_PART_SIZE} bytes`);
        this.partPool = new PartPool(options.partSize, options.partBuffers ?? (0,storage_config/* defaultPartBuffers */.sY)(options.partSize));
        this.client = (0,s3_client.createS3Client)(options);
        this.presigner = new ObjectPresigner(this.client, options.bucket);
    }
    /** Checks that the bucket exists and the credentials may use it; throws the SDK's error if not. */
    async checkBucket() {
        await this.client.send(new dist_cjs/* HeadBucketCommand */.kuI({ Bucket: this.options.bucket }));
    }
    objectKey(key) {
        if (!(0,blob_store/* isValidBlobKey */.B)(key))
            throw new Error(`invalid blob key '${key}'`);
        return `${this.options.prefix}${key}`;
    }
    async put(key, body) {
        const objectKey = this.objectKey(key);
        const chunks = body[Symbol.asyncIterator]();
        const upload = new PartUploader(this, objectKey);
        const parts = new PartBuffers(this.partPool, () => upload.sent());
        try {
            for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
                for (let chunk = next.value; chunk.length > 0;) {
                    // Copied: the body reuses a chunk's buffer once the next chunk is asked for.
                    chunk = chunk.subarray(await parts.fill(chunk));
                    if (!parts.full)
                        continue;
                    // More than one part: asked before any is sent, so a stored NAR is not sent again. A
                    // body of one part goes as one PutObject, whose If-None-Match answers the same question.
                    if (!upload.started && (await this.head(key)) !== null) {
                        // The rest is only read (and checked): its buffers are another upload's to use.
                        parts.release();
                        for (next = await chunks.next(); !next.done; next = await chunks.next())
                            ;
                        return 'exists';
                    }
                    await upload.addPart(parts.take());
                }
            }
            const rest = parts.take();
            if (!upload.started)
                return await this.putWhole(objectKey, rest);
            if (rest.length > 0)
                await upload.addPart(rest);
            return await upload.complete();
        }
        catch (error) {
            await chunks.return?.().catch(() => undefined);
            await upload.abort();
            throw error;
        }
        finally {
            parts.release();
        }
    }
    async putWhole(objectKey, bytes) {
        try {
            await (0,s3_client.guarded)(this.client.send(new dist_cjs/* PutObjectCommand */.wKZ({
                Bucket: this.options.bucket,
                Key: objectKey,
                Body: bytes,
                ContentLength: bytes.length,
                ChecksumCRC32: checksumCrc32(bytes),
                IfNoneMatch: '*',
            })));
            return 'created';
        }
        catch (error) {
            if ((0,s3_client.isPreconditionFailed)(error))
                return 'exists';
            throw error;
        }
    }
    async open(key, range) {
        try {
            const answer = await (0,s3_client.guarded)(this.client.send(new dist_cjs/* GetObjectCommand */.jLs({
                Bucket: this.options.bucket,
                Key: this.objectKey(key),
                ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
            })));
            return new ObjectReader(answer.Body, answer.ContentLength ?? 0);
        }
        catch (error) {
            if ((0,s3_client.isNotFound)(error))
                return null;
            throw error;
        }
    }
    async head(key) {
        try {
            const answer = await (0,s3_client.guarded)(this.client.send(new dist_cjs/* HeadObjectCommand */.l81({ Bucket: this.options.bucket, Key: this.objectKey(key) })));
            return { size: answer.ContentLength ?? 0 };
        }
        catch (error) {
            if ((0,s3_client.isNotFound)(error))
                return null;
            throw error;
        }
    }
    /** A URL that GETs the object without credentials for `ttlSeconds` (SigV4 query signing, no request made). */
    presignedGetUrl(key, ttlSeconds) {
        return this.presigner.presignGet(this.objectKey(key), ttlSeconds);
    }
    async delete(key) {
        await (0,s3_client.guarded)(this.client.send(new dist_cjs/* DeleteObjectCommand */.k4j({ Bucket: this.options.bucket, Key: this.objectKey(key) })));
    }
    /** Every object under the prefix named as a NAR file, a page (1000) at a time. */
    async *list(skip = () => false) {
        const { bucket, prefix } = this.options;
        let token;
        do {
            const page = await (0,s3_client.guarded)(this.client.send(new dist_cjs/* ListObjectsV2Command */.u6x({ Bucket: bucket, Prefix: prefix, ContinuationToken: token })));
            for (const object of page.Contents ?? []) {
                const key = object.Key?.slice(prefix.length);
                if (key === undefined || !(0,blob_store/* isNarBlobKey */.Q)(key) || !object.LastModified || skip(key))
                    continue;
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
    async abortIncompleteUploads(before) {
        let aborted = 0;
        let keyMarker;
        let uploadIdMarker;
        for (;;) {
            const page = await (0,s3_client.guarded)(this.client.send(new dist_cjs/* ListMultipartUploadsCommand */.mo2({
                Bucket: this.options.bucket,
                Prefix: this.options.prefix,
                KeyMarker: keyMarker,
                UploadIdMarker: uploadIdMarker,
            })));
            for (const upload of page.Uploads ?? []) {
                if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated >= before)
                    continue;
                if (!(0,blob_store/* isNarBlobKey */.Q)(upload.Key.slice(this.options.prefix.length)))
                    continue;
                if (this.uploading.has(upload.UploadId))
                    continue;
                await (0,s3_client.guarded)(this.client.send(new dist_cjs/* AbortMultipartUploadCommand */.tfP({
                    Bucket: this.options.bucket,
                    Key: upload.Key,
                    UploadId: upload.UploadId,
                }))).catch((error) => {
                    if (!(0,s3_client.isNotFound)(error))
                        throw error;
                });
                aborted++;
            }
            if (!page.IsTruncated)
                return aborted;
            keyMarker = page.NextKeyMarker;
            uploadIdMarker = page.NextUploadIdMarker;
        }
    }
    async close() {
        this.client.destroy();
    }
}
/** One multipart upload: a part uploads while the next gathers; at most one is in flight. */
class PartUploader {
    store;
    objectKey;
    uploadId;
    parts = [];
    inFlight;
    constructor(store, objectKey) {
        this.store = store;
        this.objectKey = objectKey;
    }
    get started() {
        return this.uploadId !== undefined;
    }
    get bucket() {
        return this.store.options.bucket;
    }
    async addPart(bytes) {
        if (!this.uploadId) {
            const created = await (0,s3_client.guarded)(this.store.client.send(new dist_cjs/* CreateMultipartUploadCommand */.nG4({
                Bucket: this.bucket,
                Key: this.objectKey,
                ChecksumAlgorithm: 'CRC32',
            })));
            this.uploadId = created.UploadId;
            if (this.uploadId)
                this.store.uploading.add(this.uploadId);
        }
        // The previous part must be stored before another is sent: two parts in memory at most.
        await this.inFlight;
        const partNumber = this.parts.length + 1;
        const part = { PartNumber: partNumber, ChecksumCRC32: checksumCrc32(bytes) };
        this.parts.push(part);
        this.inFlight = (0,s3_client.guarded)(this.store.client.send(new dist_cjs/* UploadPartCommand */.iVK({
            Bucket: this.bucket,
            Key: this.objectKey,
            UploadId: this.uploadId,
            PartNumber: partNumber,
            Body: bytes,
            ContentLength: bytes.length,
            ChecksumCRC32: part.ChecksumCRC32,
        }))).then((answer) => {
            part.ETag = answer.ETag;
        });
        // Its failure is taken up by the next addPart or complete; until then it is not unhandled.
        this.inFlight.catch(() => undefined);
    }
    /** Resolves once the part sent last is stored (or has failed: addPart or complete reports it). */
    async sent() {
        await this.inFlight?.catch(() => undefined);
    }
    async complete() {
        await this.inFlight;
        try {
            await (0,s3_client.guarded)(this.store.client.send(new dist_cjs/* CompleteMultipartUploadCommand */.Gym({
                Bucket: this.bucket,
                Key: this.objectKey,
                UploadId: this.uploadId,
                MultipartUpload: { Parts: this.parts },
                IfNoneMatch: '*',
            })));
            this.store.uploading.delete(this.uploadId);
            this.uploadId = undefined;
            return 'created';
        }
        catch (error) {
            if (!(0,s3_client.isPreconditionFailed)(error))
                throw error;
            await this.abort();
            return 'exists';
        }
    }
    /** Drops the parts sent so far; best effort (a sweep at start collects what this misses). */
    async abort() {
        if (!this.uploadId)
            return;
        const uploadId = this.uploadId;
        this.uploadId = undefined;
        this.store.uploading.delete(uploadId);
        await this.inFlight?.catch(() => undefined);
        await this.store.client
            .send(new dist_cjs/* AbortMultipartUploadCommand */.tfP({ Bucket: this.bucket, Key: this.objectKey, UploadId: uploadId }))
            .catch(() => undefined);
    }
}
/** A GetObject answer's body, written out with the destination's backpressure. */
class ObjectReader {
    body;
    length;
    constructor(body, length) {
        this.body = body;
        this.length = length;
    }
    async writeTo(sink, sent) {
        try {
            for await (const chunk of this.body) {
                await (0,buffer_pool/* written */.Mp)(sink, chunk);
                sent?.(chunk.length);
            }
        }
        finally {
            await this.close();
        }
    }
    async close() {
        this.body.destroy();
    }
}


/***/ }),

/***/ 5495:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

__webpack_require__.r(__webpack_exports__);
/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   UNSIGNED_PAYLOAD: () => (/* binding */ UNSIGNED_PAYLOAD),
/* harmony export */   createS3Client: () => (/* binding */ createS3Client),
/* harmony export */   guarded: () => (/* binding */ guarded),
/* harmony export */   httpStatusOf: () => (/* binding */ httpStatusOf),
/* harmony export */   isNotFound: () => (/* binding */ isNotFound),
/* harmony export */   isPreconditionFailed: () => (/* binding */ isPreconditionFailed),
/* harmony export */   isS3Unavailable: () => (/* binding */ isS3Unavailable)
/* harmony export */ });
/* harmony import */ var _aws_sdk_client_s3__WEBPACK_IMPORTED_MODULE_3__ = __webpack_require__(3711);
/* harmony import */ var node_http__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(7067);
/* harmony import */ var node_http__WEBPACK_IMPORTED_MODULE_0___default = /*#__PURE__*/__webpack_require__.n(node_http__WEBPACK_IMPORTED_MODULE_0__);
/* harmony import */ var node_https__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(4708);
/* harmony import */ var node_https__WEBPACK_IMPORTED_MODULE_1___default = /*#__PURE__*/__webpack_require__.n(node_https__WEBPACK_IMPORTED_MODULE_1__);
/* harmony import */ var _unavailable_js__WEBPACK_IMPORTED_MODULE_2__ = __webpack_require__(7927);
/**
 * The S3 client Sluice uses, and what its errors mean. Credentials come from the SDK's standard
 * chain (environment, profile, instance role), never from Sluice's config. Timeouts are short and
 * retries few, so a store that is down turns into a prompt 503 rather than a hung request.
 */




function createS3Client(location) {
    const agentOptions = { keepAlive: true, maxSockets: 128 };
    const client = new _aws_sdk_client_s3__WEBPACK_IMPORTED_MODULE_3__/* .S3Client */ .YxF({
        region: location.region,
        ...(location.endpoint ? { endpoint: location.endpoint } : {}),
        forcePathStyle: location.forcePathStyle,
        // Flexible checksums send streamed bodies as aws-chunked with trailers, which Ceph RGW and
        // other S3-compatible stores refuse; Sluice checks every byte itself anyway.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        maxAttempts: 2,
        requestHandler: {
            connectionTimeout: 2000,
            requestTimeout: 60_000,
            httpAgent: new node_http__WEBPACK_IMPORTED_MODULE_0__.Agent(agentOptions),
            httpsAgent: new node_https__WEBPACK_IMPORTED_MODULE_1__.Agent(agentOptions),
        },
    });
    signHeadersOnly(client);
    return client;
}
/** SigV4's name for a body left out of the signature. */
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/**
 * Byte bodies (parts, whole objects) are signed as UNSIGNED-PAYLOAD: SigV4 would otherwise hash
 * every byte with SHA-256 (7% of the server's CPU in a push) only to prove what Sluice already
 * verified; the part's CRC32 travels with it instead (docs/operations.md, "Integrity").
 */
function signHeadersOnly(client) {
    client.middlewareStack.add((next) => async (args) => {
        const request = args.request;
        if (request.body instanceof Uint8Array && request.headers)
            request.headers['x-amz-content-sha256'] = UNSIGNED_PAYLOAD;
        return next(args);
    }, { step: 'build', name: 'sluiceUnsignedPayload' });
}
function httpStatusOf(error) {
    return error?.$metadata?.httpStatusCode;
}
function isNotFound(error) {
    const name = error?.name;
    return httpStatusOf(error) === 404 || name === 'NoSuchKey' || name === 'NotFound';
}
function isPreconditionFailed(error) {
    const status = httpStatusOf(error);
    // 409 ConditionalRequestConflict: AWS's answer when a concurrent conditional write raced this one.
    return status === 412 || status === 409 || error.name === 'PreconditionFailed';
}
/** The store could not be reached or said it is overloaded: worth a 503 and a retry later. */
function isS3Unavailable(error) {
    const status = httpStatusOf(error);
    if (status !== undefined)
        return status >= 500;
    // No HTTP answer at all: refused, reset, timed out, DNS. (Duck-typed: errors from Node's sockets
    // may come from another realm, where `instanceof Error` is false.)
    return (typeof error === 'object' && error !== null && error.name !== 'CredentialsProviderError');
}
/** Awaits an S3 call; an unreachable or failing store becomes a StorageUnavailableError (503). */
async function guarded(call) {
    try {
        return await call;
    }
    catch (error) {
        if (isS3Unavailable(error))
            throw new _unavailable_js__WEBPACK_IMPORTED_MODULE_2__/* .StorageUnavailableError */ .y7('the object store', error);
        throw error;
    }
}


/***/ })

};
