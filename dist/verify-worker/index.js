import { createRequire as __WEBPACK_EXTERNAL_createRequire } from "module";
var __webpack_exports__ = {};

;// CONCATENATED MODULE: external "node:worker_threads"
const external_node_worker_threads_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:worker_threads");
;// CONCATENATED MODULE: ./src/contracts/http-error.ts
class HttpError extends Error {
    status;
    reason;
    headers;
    constructor(status, message, 
    /** A short machine-readable reason, for metrics labels (`rejected_uploads{reason=\u2026}`). */
    reason = 'error', headers = {}) {
        super(message);
        this.status = status;
        this.reason = reason;
        this.headers = headers;
    }
}
/**
 * Answers with the error's status and a plain-text message. When headers were already sent the
 * response cannot change status any more, so it is destroyed instead.
 */
function sendError(res, error) {
    const status = error instanceof HttpError ? error.status : 500;
    const message = error instanceof HttpError ? error.message : 'internal server error';
    if (res.headersSent) {
        res.destroy(error instanceof Error ? error : undefined);
        return;
    }
    const body = `${message}\n`;
    res.writeHead(status, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        ...(error instanceof HttpError ? error.headers : {}),
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
}

;// CONCATENATED MODULE: external "node:crypto"
const external_node_crypto_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:crypto");
;// CONCATENATED MODULE: ./src/nix/nix32.ts
/**
 * Nix's base-32 encoding ("nix32"): a custom alphabet without e, o, t, u, and the bytes read from
 * the end, so the first character carries the most significant bits of the last byte.
 */
const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
/** One nix32 character, as a regular-expression class. */
const NIX32_CLASS = (/* unused pure expression or super */ null && (`[${NIX32_ALPHABET}]`));
const DIGIT_OF = new Map([...NIX32_ALPHABET].map((c, i) => [c, i]));
/** Length in characters of the nix32 form of `byteLength` bytes. */
function nix32Length(byteLength) {
    return Math.ceil((byteLength * 8) / 5);
}
function encodeNix32(bytes) {
    const length = nix32Length(bytes.length);
    let out = '';
    for (let n = length - 1; n >= 0; n--) {
        const bit = n * 5;
        const i = bit >> 3;
        const j = bit & 7;
        const low = bytes[i] >> j;
        const high = i + 1 < bytes.length ? bytes[i + 1] << (8 - j) : 0;
        out += NIX32_ALPHABET[(low | high) & 0x1f];
    }
    return out;
}
class Nix32Error extends Error {
}
function decodeNix32(text, byteLength = Math.floor((text.length * 5) / 8)) {
    if (text.length !== nix32Length(byteLength)) {
        throw new Nix32Error(`nix32 string of ${text.length} characters cannot hold ${byteLength} bytes`);
    }
    const bytes = Buffer.alloc(byteLength);
    for (let n = 0; n < text.length; n++) {
        const c = text[text.length - n - 1];
        const digit = DIGIT_OF.get(c);
        if (digit === undefined)
            throw new Nix32Error(`invalid character '${c}' in nix32 string`);
        const bit = n * 5;
        const i = bit >> 3;
        const j = bit & 7;
        bytes[i] |= (digit << j) & 0xff;
        const carry = digit >> (8 - j);
        if (i + 1 < byteLength)
            bytes[i + 1] |= carry;
        else if (carry !== 0)
            throw new Nix32Error(`nix32 string has bits beyond ${byteLength} bytes`);
    }
    return bytes;
}
function isNix32(text) {
    for (const c of text)
        if (!DIGIT_OF.has(c))
            return false;
    return true;
}

;// CONCATENATED MODULE: ./src/nix/hash.ts
/** Nix hashes and their text forms: `algo:nix32`, `algo:base16`, `algo:base64` and SRI `algo-base64`. */


const DIGEST_BYTES = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };
class HashError extends Error {
}
class Hash {
    algorithm;
    digest;
    constructor(algorithm, digest) {
        this.algorithm = algorithm;
        this.digest = digest;
        if (digest.length !== DIGEST_BYTES[algorithm]) {
            throw new HashError(`${algorithm} digest must be ${DIGEST_BYTES[algorithm]} bytes, got ${digest.length}`);
        }
    }
    /**
     * Parses `algo:<nix32|base16|base64>` or SRI `algo-<base64>`. With `expected`, a bare digest
     * without the algorithm prefix is accepted too.
     */
    static parse(text, expected) {
        const sri = /^(md5|sha1|sha256|sha512)-([A-Za-z0-9+/]+={0,2})$/.exec(text);
        if (sri) {
            if (expected !== undefined && sri[1] !== expected)
                throw new HashError(`expected a ${expected} hash, got '${text}'`);
            return Hash.fromDigestText(sri[1], sri[2], 'base64', text);
        }
        const colon = text.indexOf(':');
        let algorithm;
        let digest;
        if (colon === -1) {
            algorithm = expected;
            digest = text;
        }
        else {
            algorithm = text.slice(0, colon);
            digest = text.slice(colon + 1);
        }
        if (algorithm === undefined)
            throw new HashError(`hash '${text}' does not name its algorithm`);
        if (!(algorithm in DIGEST_BYTES))
            throw new HashError(`unknown hash algorithm '${algorithm}' in '${text}'`);
        if (expected !== undefined && algorithm !== expected) {
            throw new HashError(`expected a ${expected} hash, got '${text}'`);
        }
        return Hash.fromDigestText(algorithm, digest, undefined, text);
    }
    static fromDigestText(algorithm, digest, encoding, original) {
        const bytes = DIGEST_BYTES[algorithm];
        if (encoding === undefined) {
            if (digest.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(digest)) {
                return new Hash(algorithm, Buffer.from(digest, 'hex'));
            }
            if (digest.length === nix32Length(bytes) && isNix32(digest)) {
                try {
                    return new Hash(algorithm, decodeNix32(digest, bytes));
                }
                catch (e) {
                    if (e instanceof Nix32Error)
                        throw new HashError(`'${original}' is not a valid ${algorithm} hash: ${e.message}`);
                    throw e;
                }
            }
        }
        if (digest.length === Math.ceil(bytes / 3) * 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(digest)) {
            const decoded = Buffer.from(digest, 'base64');
            // Node ignores stray bits in the last character: insist on the one canonical spelling.
            if (decoded.length === bytes && decoded.toString('base64') === digest)
                return new Hash(algorithm, decoded);
        }
        throw new HashError(`'${original}' is not a valid ${algorithm} hash`);
    }
    static of(algorithm, data) {
        return new Hash(algorithm, (0,external_node_crypto_namespaceObject.createHash)(algorithm).update(data).digest());
    }
    get nix32() {
        return encodeNix32(this.digest);
    }
    get base16() {
        return this.digest.toString('hex');
    }
    get base64() {
        return this.digest.toString('base64');
    }
    /** `sha256:<nix32>`, the form narinfo files use. */
    toString() {
        return `${this.algorithm}:${this.nix32}`;
    }
    toBase16String() {
        return `${this.algorithm}:${this.base16}`;
    }
    toSRI() {
        return `${this.algorithm}-${this.base64}`;
    }
    equals(other) {
        return this.algorithm === other.algorithm && this.digest.equals(other.digest);
    }
}

;// CONCATENATED MODULE: ./src/nix/file-hash.ts
/** The sha256 and size of a file fed chunk by chunk: a narinfo's FileHash and FileSize. */


class FileHasher {
    hasher = (0,external_node_crypto_namespaceObject.createHash)('sha256');
    size = 0;
    update(chunk) {
        this.hasher.update(chunk);
        this.size += chunk.length;
    }
    /** Bytes fed so far. */
    get fileSize() {
        return this.size;
    }
    /** Once, after the last chunk. */
    digest() {
        return { fileHash: new Hash('sha256', this.hasher.digest()), fileSize: this.size };
    }
}

;// CONCATENATED MODULE: external "node:stream/promises"
const promises_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:stream/promises");
;// CONCATENATED MODULE: external "node:util"
const external_node_util_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:util");
;// CONCATENATED MODULE: ./src/nix/buffer-pool.ts

/**
 * Buffers of one size that NAR bytes pass through, kept for reuse. On the machines Sluice runs
 * on, a fresh buffer per chunk costs more than the copying it serves: its pages fault in, and
 * V8 runs full collections over the churn. Only a bounded number are kept, and with `idleMs`
 * none once the pool has gone unused that long.
 */
class BufferPool {
    size;
    maxKept;
    idleMs;
    shared;
    free = [];
    idleTimer;
    constructor(size, maxKept, idleMs, 
    /** Each buffer a whole SharedArrayBuffer, which worker threads can read without a copy. */
    shared = false) {
        this.size = size;
        this.maxKept = maxKept;
        this.idleMs = idleMs;
        this.shared = shared;
    }
    take() {
        const kept = this.free.pop();
        if (kept)
            return kept;
        return this.shared ? Buffer.from(new SharedArrayBuffer(this.size)) : Buffer.allocUnsafeSlow(this.size);
    }
    /** Only buffers nothing reads or writes any more, and that came from `take`. */
    give(buffers) {
        for (const buffer of buffers) {
            if (this.free.length < this.maxKept)
                this.free.push(buffer);
            else if (!this.shared)
                releaseMemory(buffer);
        }
        if (this.idleMs === undefined)
            return;
        clearTimeout(this.idleTimer);
        this.idleTimer = setTimeout(() => this.clear(), this.idleMs).unref();
    }
    /** Buffers kept for the next `take`s. */
    get kept() {
        return this.free.length;
    }
    clear() {
        clearTimeout(this.idleTimer);
        this.free.length = 0;
    }
}
/**
 * Frees a buffer's memory now, for a buffer that has memory of its own (not a view into someone
 * else's) and that nothing reads any more. Otherwise such memory is freed when V8 collects the
 * buffer's small JS object: young collections catch most, but a buffer that lived through two of
 * them (an upload waiting for its socket) waits for a full collection, and on a push such memory
 * piled up by tens of MB between them (the daemon ran a full collection every 32 MiB to stay
 * within 100 MB: ~0.5 s of CPU per GiB). Small buffers, which may be slices of Node's shared
 * pool, are left to the collector.
 */
function releaseMemory(buffer) {
    const memory = buffer.buffer;
    // A slice of the pool never spans all of it, and the pool's memory is `poolSize` bytes.
    const own = (buffer.byteOffset === 0 && buffer.length === memory.byteLength) || memory.byteLength > Buffer.poolSize;
    if (own && external_node_util_namespaceObject.types.isArrayBuffer(memory) && !memory.detached)
        memory.transfer(0);
}
/**
 * `releaseMemory` for a chunk that reaches the end of its memory: a socket's chunk (memory of its
 * own), or a zlib stream's output slice that fills the stream's buffer (zlib moves on to a fresh
 * one then, and the slices before it were read already).
 */
function releaseSpent(chunk) {
    if (chunk.byteOffset + chunk.length === chunk.buffer.byteLength)
        releaseMemory(chunk);
}
/**
 * The chunks of `source`, each freed (`releaseSpent`) once the next is asked for: for a request
 * body read by one consumer that keeps no chunk (it copies them).
 */
async function* releasedAfterUse(source) {
    for await (const chunk of source) {
        yield chunk;
        releaseSpent(chunk);
    }
}
/**
 * `source` copied into `target` from `targetStart`, as much as fits; returns how many bytes that
 * was (as `Buffer.copy`). `fill` rather than `copy`: when either side is a SharedArrayBuffer's,
 * `copy` goes through V8's `TypedArray.set`, which copies a word at a time with relaxed atomics
 * (about 3x slower here than the native memcpy `fill` uses); the upload path copies every byte
 * into or out of shared stages. The two must not overlap (`copy` allows that; `fill` does not).
 */
function copyInto(target, targetStart, source) {
    const count = Math.min(target.length - targetStart, source.length);
    if (count <= 0)
        return 0;
    target.fill(count === source.length ? source : source.subarray(0, count), targetStart, targetStart + count);
    return count;
}
/**
 * Resolves once `sink` is done with `chunk`, so that its buffer may be reused (for a socket or
 * zlib, once the write callback has run); rejects if the write fails or `sink` closes first.
 */
function written(sink, chunk) {
    return new Promise((resolve, reject) => {
        const closed = () => reject(new Error('the destination closed before taking all the bytes'));
        sink.once('close', closed);
        sink.write(chunk, (error) => {
            sink.off('close', closed);
            if (error)
                reject(error);
            else
                resolve();
        });
    });
}
/**
 * Sends bytes `start` to `end` (exclusive) of `file` to `sink` through two buffers of `pool`, one
 * read into while the other is being written, rather than a read stream's fresh buffer per read:
 * on a busy machine those allocations (page faults, then full collections) cost more than the
 * copying. `sent` hears of each piece once `sink` took it. The buffers go back to the pool only
 * when every write finished; the caller closes `file`.
 */
async function sendFileRange(file, start, end, sink, pool, sent) {
    const buffers = [pool.take(), pool.take()];
    let sending;
    try {
        for (let position = start, turn = 0; position < end; turn++) {
            const buffer = buffers[turn % 2];
            const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, end - position), position);
            if (bytesRead === 0)
                throw new Error('the file is shorter than it was when opened');
            position += bytesRead;
            // The buffer read into now was last sent two turns ago, and that write has finished.
            await sending;
            sending = written(sink, buffer.subarray(0, bytesRead)).then(() => sent?.(bytesRead));
            // Awaited after the next read: a client gone meanwhile must not make it an unhandled
            // rejection, which would end the server's process.
            sending.catch(() => undefined);
        }
        await sending;
    }
    catch (error) {
        // A write still in flight may fail later; its buffer stays with it.
        sending?.catch(() => undefined);
        throw error;
    }
    pool.give(buffers);
}

;// CONCATENATED MODULE: external "node:child_process"
const external_node_child_process_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:child_process");
;// CONCATENATED MODULE: external "node:stream"
const external_node_stream_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:stream");
;// CONCATENATED MODULE: external "node:zlib"
const external_node_zlib_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:zlib");
;// CONCATENATED MODULE: ./src/nix/zstd-frames.ts
/**
 * Node 24's zstd decompressor silently drops whatever follows the end of a frame within the same
 * chunk, so concatenated frames (pzstd, files compressed in parts) lose data or fail with "Unknown
 * frame descriptor". This Transform walks the zstd frame format (RFC 8878: frame header, block
 * headers, checksum) and re-chunks the input so that no chunk spans two frames; skippable frames
 * are dropped. The decompressor after it then sees each frame on its own and decodes them all.
 *
 * For uploads the walk also refuses what a NAR file has no use for: skippable frames (padding that
 * would be stored and served) and frames whose window needs more memory than allowed.
 */

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
// Units whose bytes are parsed (the others are only counted).
const PARSED = new Set(['magic', 'descriptor', 'headerRest', 'blockHeader', 'skipSize']);
const DICT_ID_BYTES = [0, 1, 2, 4];
const CONTENT_SIZE_BYTES = [0, 2, 4, 8];
class ZstdFrameError extends Error {
}
/** A frame asks for a larger window (decoder memory) than `maxWindowBytes`. */
class ZstdWindowError extends ZstdFrameError {
}
/** A skippable frame where `refuseSkippable` is set. */
class ZstdSkippableFrameError extends ZstdFrameError {
}
const MiB = 1024 * 1024;
const mib = (bytes) => `${Math.round((bytes / MiB) * 10) / 10} MiB`;
/** A Transform over ZstdFrameScanner: what it emits, it pushes. */
class ZstdFrameSplitter extends external_node_stream_namespaceObject.Transform {
    scanner = new ZstdFrameScanner();
    _transform(chunk, _encoding, callback) {
        try {
            this.scanner.split(chunk, (piece) => this.push(piece));
        }
        catch (error) {
            callback(error);
            return;
        }
        callback();
    }
    _flush(callback) {
        try {
            this.scanner.finish();
        }
        catch (error) {
            callback(error);
            return;
        }
        callback();
    }
}
/**
 * The frame walk itself, without a stream: `split` emits each chunk's zstd-frame bytes in pieces
 * that never span two frames (views of the chunk, except a frame's magic number, which is a copy).
 */
class ZstdFrameScanner {
    rules;
    unit = 'magic';
    need = 4;
    parsed = [];
    checksum = false;
    singleSegment = false;
    dictIdBytes = 0;
    /** Where the current frame began, for messages. */
    frameStart = 0;
    lastBlock = false;
    /** Bytes of input consumed so far, for error messages. */
    position = 0;
    /** Whether the bytes now passing belong to a zstd frame (forwarded) rather than a skippable one. */
    forwarding = false;
    /** Where the current `split` call emits (advance() emits a frame's magic number). */
    emit = () => undefined;
    constructor(rules = {}) {
        this.rules = rules;
    }
    /** Emits the pieces of `chunk`; throws a ZstdFrameError where the data is not zstd frames. */
    split(chunk, emit) {
        this.emit = emit;
        let start = 0;
        let i = 0;
        while (i < chunk.length) {
            const take = Math.min(this.need, chunk.length - i);
            if (PARSED.has(this.unit))
                this.parsed.push(...chunk.subarray(i, i + take));
            i += take;
            this.position += take;
            this.need -= take;
            if (this.need > 0)
                break;
            const unit = this.unit;
            const frameEnded = this.advance();
            if (unit === 'magic')
                start = i; // advance() emitted the magic itself, once it knew the kind
            if (frameEnded) {
                if (this.forwarding && i > start)
                    emit(chunk.subarray(start, i));
                start = i;
                this.forwarding = false;
            }
        }
        if (this.forwarding && i > start)
            emit(chunk.subarray(start, i));
    }
    /** Throws unless the data so far ended at the end of a frame. */
    finish() {
        if (this.unit !== 'magic' || this.need !== 4) {
            throw new ZstdFrameError('zstd data ends in the middle of a frame (truncated)');
        }
    }
    /** Moves past a completed unit; returns true when a frame (zstd or skippable) ended with it. */
    advance() {
        const bytes = Buffer.from(this.parsed);
        this.parsed = [];
        switch (this.unit) {
            case 'magic': {
                const magic = bytes.readUInt32LE(0);
                this.frameStart = this.position - 4;
                if (magic === ZSTD_MAGIC) {
                    this.emit(bytes);
                    this.forwarding = true;
                    return this.next('descriptor', 1);
                }
                if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC) {
                    if (this.rules.refuseSkippable) {
                        throw new ZstdSkippableFrameError(`zstd skippable frame at byte ${this.frameStart}: padding is not accepted in a NAR file`);
                    }
                    return this.next('skipSize', 4);
                }
                throw new ZstdFrameError(`not zstd data: no frame magic number at byte ${this.frameStart}`);
            }
            case 'descriptor': {
                const d = bytes[0];
                if (d & 0x08)
                    throw new ZstdFrameError('zstd frame header has its reserved bit set');
                const singleSegment = (d >> 5) & 1;
                const contentSizeFlag = d >> 6;
                this.checksum = ((d >> 2) & 1) === 1;
                this.singleSegment = singleSegment === 1;
                this.dictIdBytes = DICT_ID_BYTES[d & 3];
                const rest = (singleSegment ? 0 : 1) +
                    DICT_ID_BYTES[d & 3] +
                    (contentSizeFlag === 0 ? singleSegment : CONTENT_SIZE_BYTES[contentSizeFlag]);
                return this.next('headerRest', rest);
            }
            case 'headerRest':
                this.checkWindow(bytes);
                return this.next('blockHeader', 3);
            case 'blockHeader': {
                const header = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16);
                this.lastBlock = (header & 1) === 1;
                const type = (header >> 1) & 3;
                if (type === 3)
                    throw new ZstdFrameError('zstd block has the reserved block type');
                return this.next('blockContent', type === 1 ? 1 : header >>> 3);
            }
            case 'blockContent':
                if (!this.lastBlock)
                    return this.next('blockHeader', 3);
                if (this.checksum)
                    return this.next('checksum', 4);
                return this.endFrame();
            case 'checksum':
                return this.endFrame();
            case 'skipSize':
                return this.next('skipContent', bytes.readUInt32LE(0));
            case 'skipContent':
                return this.endFrame();
        }
    }
    /** The window the frame header declares (RFC 8878 3.1.1.1.2), against `maxWindowBytes`. */
    checkWindow(rest) {
        const max = this.rules.maxWindowBytes;
        if (max === undefined)
            return;
        let window;
        if (this.singleSegment) {
            // No window descriptor: the window is the whole content, whose size follows the dictionary id.
            const sizeBytes = rest.subarray(this.dictIdBytes);
            window =
                sizeBytes.length === 2
                    ? sizeBytes.readUInt16LE(0) + 256
                    : sizeBytes.length === 8
                        ? Number(sizeBytes.readBigUInt64LE(0))
                        : sizeBytes.readUIntLE(0, sizeBytes.length);
        }
        else {
            const descriptor = rest[0];
            const base = 2 ** (10 + (descriptor >> 3));
            window = base + (base / 8) * (descriptor & 7);
        }
        if (window > max) {
            throw new ZstdWindowError(`zstd frame at byte ${this.frameStart} needs a ${mib(window)} window to decompress, over the limit of ${mib(max)}`);
        }
    }
    next(unit, need) {
        this.unit = unit;
        this.need = need;
        // Zero-length units (an empty header rest, an empty raw block) complete at once.
        return need === 0 ? this.advance() : false;
    }
    endFrame() {
        this.unit = 'magic';
        this.need = 4;
        return true;
    }
}

;// CONCATENATED MODULE: ./src/nix/nar.ts
/**
 * Streaming NAR hashing, compression and decompression. Nothing here holds a NAR in memory: data
 * flows through in chunks, so a multi-gigabyte upload costs a few buffers.
 *
 * zstd comes from Node 24's zlib. xz runs the system `xz` program as a child process, both ways:
 * Node has no xz, and the WASM decompressor on npm (xz-decompress) is correct (multi-block,
 * multi-stream, integrity checks) but serializes every decompression in the process behind one
 * global lock, so one slow xz upload would stall all others. `xz` is native, concurrent and
 * multi-threaded; the `xz` program (Debian: xz-utils) must be on PATH when xz is used.
 */




/** Compressions Sluice can verify and produce (a subset of what Nix reads). */
const NAR_COMPRESSIONS = ['none', 'zstd', 'xz'];
class CompressionError extends Error {
}
/** A decompressor needs more memory than it is allowed (xz's dictionary, zstd's window). */
class DecompressionMemoryError extends CompressionError {
}
/** Without a stated limit: xz -9 needs 65 MiB to decompress; a file asking for far more is refused. */
const XZ_DECOMPRESS_MEMLIMIT = 256 * 1024 * 1024;
const nar_mib = (bytes) => `${Math.round((bytes / 2 ** 20) * 10) / 10} MiB`;
function checkCompression(compression) {
    if (!NAR_COMPRESSIONS.includes(compression)) {
        throw new CompressionError(`unsupported compression '${compression}' (supported: ${NAR_COMPRESSIONS.join(', ')})`);
    }
    return compression;
}
/** A Duplex over a filter program's stdin/stdout; a non-zero exit becomes an error naming stderr. */
class ProcessStream extends external_node_stream_namespaceObject.Duplex {
    what;
    explain;
    child;
    stderr = '';
    constructor(command, args, what, 
    /** Turns the program's stderr into a more specific error, where it recognises one. */
    explain = () => undefined) {
        super();
        this.what = what;
        this.explain = explain;
        this.child = (0,external_node_child_process_namespaceObject.spawn)(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
        // EPIPE when the program quits early (corrupt input): its exit status tells why.
        this.child.stdin.on('error', () => { });
        this.child.stderr.setEncoding('utf8').on('data', (text) => {
            if (this.stderr.length < 4096)
                this.stderr += text;
        });
        this.child.stdout.on('data', (chunk) => {
            if (!this.push(chunk))
                this.child.stdout.pause();
        });
        this.child.on('error', (error) => {
            this.destroy(error.code === 'ENOENT'
                ? new CompressionError(`${what} needs the '${command}' program on PATH (Debian: apt-get install xz-utils)`)
                : error);
        });
        this.child.on('close', (code, signal) => {
            if (this.destroyed)
                return;
            if (code === 0)
                this.push(null);
            else {
                const detail = this.stderr.trim() || (signal ? `killed by ${signal}` : `exit code ${code}`);
                this.destroy(this.explain(this.stderr) ?? new CompressionError(`${this.what} failed: ${detail}`));
            }
        });
    }
    _read() {
        this.child.stdout.resume();
    }
    _write(chunk, _encoding, callback) {
        if (this.child.stdin.write(chunk))
            callback();
        else
            this.child.stdin.once('drain', () => callback());
    }
    _final(callback) {
        this.child.stdin.end();
        callback();
    }
    _destroy(error, callback) {
        if (this.child.exitCode === null && this.child.signalCode === null)
            this.child.kill();
        callback(error);
    }
}
/**
 * Output chunk of Node's zstd streams. The default (16 KiB) costs a thread-pool round trip per
 * 16 KiB: on incompressible data that is 3\u00d7 the CPU of 256 KiB chunks.
 */
const ZSTD_CHUNK_BYTES = 256 * 1024;
/** Node's zstd decoder, its window bounded by `maxMemory` (default: zstd's own limit, 128 MiB). */
function createZstdDecoder(maxMemory) {
    const windowLogMax = maxMemory === undefined ? undefined : Math.min(31, Math.max(10, Math.floor(Math.log2(maxMemory))));
    return (0,external_node_zlib_namespaceObject.createZstdDecompress)({
        chunkSize: ZSTD_CHUNK_BYTES,
        ...(windowLogMax === undefined ? {} : { params: { [external_node_zlib_namespaceObject.constants.ZSTD_d_windowLogMax]: windowLogMax } }),
    });
}
/** The `xz` program decompressing within `maxMemory`, on one thread (one dictionary per upload). */
function createXzDecoder(maxMemory = XZ_DECOMPRESS_MEMLIMIT) {
    return new ProcessStream('xz', ['--decompress', '--stdout', '--quiet', '--threads=1', `--memlimit-decompress=${maxMemory}`], 'xz decompression', (stderr) => /memory usage limit reached/i.test(stderr)
        ? new DecompressionMemoryError(`xz data needs more memory to decompress than the limit of ${nar_mib(maxMemory)} (its dictionary is larger)`)
        : undefined);
}
/** A stream that turns a compressed NAR file back into the NAR. */
function createDecompressor(compression, options = {}) {
    switch (checkCompression(compression)) {
        case 'none':
            return new external_node_stream_namespaceObject.PassThrough();
        case 'zstd':
            // Node's decoder alone drops frames that follow another in the same chunk: split them first.
            return new ZstdFrameSplitter().compose(createZstdDecoder(options.maxMemory));
        case 'xz':
            return createXzDecoder(options.maxMemory);
    }
}
/** With a checksum, as the zstd tool writes by default: corruption fails decompression loudly. */
function zstdParams(level) {
    return {
        [zlibConstants.ZSTD_c_checksumFlag]: 1,
        ...(level === undefined ? {} : { [zlibConstants.ZSTD_c_compressionLevel]: level }),
    };
}
/**
 * A small NAR compressed with zstd in one call, as `createCompressor` would stream it: no stream,
 * and none of the output buffer of its chunk size that a stream allocates however small the NAR.
 */
function zstdCompressWhole(nar, options = {}) {
    // Room for all of the output in one buffer (zstd adds at most ~0.4% to incompressible data): in
    // 16 KiB chunks, as zlib writes by default, the output would be allocated twice (chunks, concat).
    const chunkSize = nar.length + (nar.length >> 7) + 1024;
    return zstdCompressSync(nar, { params: zstdParams(options.level), chunkSize });
}
/**
 * A stream that compresses a NAR as `compression`. `level` defaults to the tools' own defaults
 * (zstd 3, xz 6, as `nix copy` uses); xz uses all cores, which makes multi-block files Nix reads.
 */
function createCompressor(compression, options = {}) {
    const { level } = options;
    switch (checkCompression(compression)) {
        case 'none':
            return new PassThrough();
        case 'zstd':
            return createZstdCompress({ chunkSize: ZSTD_CHUNK_BYTES, params: zstdParams(level) });
        case 'xz': {
            if (level !== undefined && !(Number.isInteger(level) && level >= 0 && level <= 9)) {
                throw new CompressionError(`xz level must be 0-9, got ${level}`);
            }
            const args = [
                '--compress',
                '--stdout',
                '--quiet',
                '--threads=0',
                ...(level === undefined ? [] : [`-${level}`]),
            ];
            return new ProcessStream('xz', args, 'xz compression');
        }
    }
}

;// CONCATENATED MODULE: ./src/nix/nar-structure.ts
/**
 * Checks, as the bytes stream past, that they are one NAR and nothing else: the `nix-archive-1`
 * magic, then nodes as Nix's parser accepts them (regular files, symlinks, directories with valid,
 * sorted entry names, zero padding), and no byte after the top node's end. Only the framing is
 * parsed: file contents are counted, not kept, so checking costs little besides the hash.
 *
 * Knowing the framing lets an upload be refused early: bytes that are not a NAR fail on their first
 * 8 bytes, and a file whose declared length passes a limit fails before its contents are inflated.
 */
class NarFormatError extends Error {
    reason;
    constructor(message, 
    /** `not_a_nar` (wrong start), `trailing_data` (bytes after the NAR) or `bad_nar` (malformed). */
    reason) {
        super(message);
        this.reason = reason;
    }
}
const MAGIC = 'nix-archive-1';
/** Longest keyword of the format ('nix-archive-1'). */
const KEYWORD_MAX = 16;
/** NAME_MAX and PATH_MAX on Linux: longer names or link targets cannot be restored. */
const NAME_MAX = 255;
const TARGET_MAX = 4096;
/** Deeper than PATH_MAX allows anyway (each level adds at least `x/`); bounds the memory kept per level. */
const DEPTH_MAX = 2048;
const padding = (length) => (8 - (length % 8)) % 8;
class NarStructureChecker {
    expect = 'magic';
    /** Per open directory, the name of its last entry (entries must be sorted). */
    directories = [];
    phase = 'length';
    /** Bytes still needed to complete the phase. */
    need = 8;
    gathered = [];
    stringLength = 0;
    finished = false;
    /** Bytes checked so far. */
    size = 0;
    /**
     * The least the NAR's size can be, given what it has declared: the bytes so far plus the rest of
     * the file contents being read. Past a limit, the upload can be refused before inflating them.
     */
    get declaredSize() {
        return this.phase === 'contents' ? this.size + this.need + padding(this.stringLength) : this.size;
    }
    /** Checks the next bytes; throws a NarFormatError at the first one that does not fit. */
    update(chunk) {
        for (let i = 0; i < chunk.length;) {
            if (this.finished) {
                throw new NarFormatError(`the NAR ends at byte ${this.size}, but more data follows it`, 'trailing_data');
            }
            const take = Math.min(this.need, chunk.length - i);
            // Copied: the caller may reuse its buffer once this returns, and a string may span chunks.
            if (this.phase !== 'contents')
                this.gathered.push(Buffer.from(chunk.subarray(i, i + take)));
            i += take;
            this.need -= take;
            this.size += take;
            if (this.need === 0)
                this.completePhase();
        }
    }
    /** Throws unless the bytes so far are one whole NAR. */
    end() {
        if (this.finished)
            return;
        if (this.expect === 'magic')
            this.fail('cut off');
        throw new NarFormatError(`the NAR is cut off after ${this.size} bytes`, 'bad_nar');
    }
    fail(message) {
        if (this.expect === 'magic') {
            throw new NarFormatError(`the upload is not a NAR: it does not start with '${MAGIC}'`, 'not_a_nar');
        }
        throw new NarFormatError(`malformed NAR at byte ${this.size}: ${message}`, 'bad_nar');
    }
    take() {
        const bytes = this.gathered.length === 1 ? this.gathered[0] : Buffer.concat(this.gathered);
        this.gathered = [];
        return bytes;
    }
    completePhase() {
        // Zero-length phases (an empty string, empty contents, no padding) complete at once.
        do {
            switch (this.phase) {
                case 'length':
                    this.lengthRead(this.take().readBigUInt64LE(0));
                    break;
                case 'string': {
                    const bytes = this.take();
                    this.checkPadding(bytes.subarray(this.stringLength));
                    this.phase = 'length';
                    this.need = 8;
                    this.token(bytes.subarray(0, this.stringLength));
                    break;
                }
                case 'contents':
                    this.phase = 'padding';
                    this.need = padding(this.stringLength);
                    break;
                case 'padding':
                    this.checkPadding(this.take());
                    this.phase = 'length';
                    this.need = 8;
                    this.expect = 'close';
                    break;
            }
        } while (this.need === 0 && !this.finished);
    }
    lengthRead(length) {
        if (this.expect === 'contentsLength') {
            if (length > BigInt(Number.MAX_SAFE_INTEGER))
                this.fail(`a file of ${length} bytes`);
            this.stringLength = Number(length);
            this.phase = 'contents';
            this.need = this.stringLength;
            return;
        }
        const max = this.expect === 'name' ? NAME_MAX : this.expect === 'target' ? TARGET_MAX : KEYWORD_MAX;
        if (length > BigInt(max))
            this.fail(`a string of ${length} bytes where ${this.describe()} belongs`);
        this.stringLength = Number(length);
        this.phase = 'string';
        this.need = this.stringLength + padding(this.stringLength);
    }
    checkPadding(bytes) {
        if (bytes.some((byte) => byte !== 0))
            this.fail('non-zero padding');
    }
    describe() {
        return this.expect === 'name'
            ? 'a file name'
            : this.expect === 'target'
                ? 'a symlink target'
                : 'a keyword';
    }
    /** Moves on from a complete string (other than file contents). */
    token(value) {
        const text = this.expect === 'name' || this.expect === 'target' ? '' : value.toString('latin1');
        const want = (keyword, next) => {
            if (text !== keyword)
                this.fail(`expected '${keyword}', found '${text.slice(0, 16)}'`);
            this.expect = next;
        };
        switch (this.expect) {
            case 'magic':
                return want(MAGIC, 'open');
            case 'open':
                return want('(', 'typeKey');
            case 'typeKey':
                return want('type', 'type');
            case 'type':
                if (text === 'regular')
                    this.expect = 'regularTag';
                else if (text === 'symlink')
                    this.expect = 'targetKey';
                else if (text === 'directory')
                    this.openDirectory();
                else
                    this.fail(`unknown node type '${text.slice(0, 16)}'`);
                return;
            case 'regularTag':
                if (text === 'executable')
                    this.expect = 'executableValue';
                else
                    want('contents', 'contentsLength');
                return;
            case 'executableValue':
                return want('', 'contentsKey');
            case 'contentsKey':
                return want('contents', 'contentsLength');
            case 'targetKey':
                return want('target', 'target');
            case 'target':
                if (value.length === 0 || value.includes(0))
                    this.fail('an empty symlink target or one with a NUL byte');
                this.expect = 'close';
                return;
            case 'directoryTag':
                if (text === ')')
                    return this.closeDirectory();
                return want('entry', 'entryOpen');
            case 'entryOpen':
                return want('(', 'nameKey');
            case 'nameKey':
                return want('name', 'name');
            case 'name':
                return this.entryName(value);
            case 'nodeKey':
                return want('node', 'open');
            case 'entryClose':
                return want(')', 'directoryTag');
            case 'close':
                want(')', 'close');
                return this.nodeEnded();
            case 'contentsLength':
                throw new Error('unreachable: a file length is not a string');
        }
    }
    openDirectory() {
        if (this.directories.length >= DEPTH_MAX)
            this.fail(`directories nested deeper than ${DEPTH_MAX}`);
        this.directories.push(null);
        this.expect = 'directoryTag';
    }
    closeDirectory() {
        this.directories.pop();
        this.nodeEnded();
    }
    entryName(name) {
        const text = name.toString('latin1');
        if (name.length === 0 || text === '.' || text === '..' || name.includes(0x2f) || name.includes(0)) {
            this.fail(`invalid file name '${name.toString('utf8').slice(0, 64)}'`);
        }
        const depth = this.directories.length - 1;
        const previous = this.directories[depth];
        if (previous && Buffer.compare(previous, name) >= 0)
            this.fail('directory entries are not sorted');
        this.directories[depth] = name;
        this.expect = 'nodeKey';
    }
    /** A node's closing `)` was read: the NAR ends, or the directory entry holding the node does. */
    nodeEnded() {
        if (this.directories.length === 0)
            this.finished = true;
        else
            this.expect = 'entryClose';
    }
}

;// CONCATENATED MODULE: ./src/nix/nar-hasher.ts
/**
 * Decompresses a NAR file fed chunk by chunk and hashes the NAR inside, without a stream of its
 * own to pass through: the upload path feeds it the chunks it also writes to storage.
 *
 * Given limits (as the server's uploads are), it also refuses what is not worth inflating: bytes
 * that are not exactly one NAR, a NAR past the size limit (as soon as the NAR declares a file that
 * would pass it), output out of all proportion to the input, skippable zstd frames, and frames or
 * dictionaries that need more decoder memory than allowed. The decompressor stops at once.
 */







/** Below this, any ratio is fine: inflating 64 MiB costs a fraction of a second. */
const RATIO_FLOOR_BYTES = 64 * 1024 * 1024;
class NarLimitError extends Error {
    limit;
    constructor(message, limit) {
        super(message);
        this.limit = limit;
    }
}
function createNarHasher(compression, limits) {
    const output = new NarOutput(limits);
    switch (checkCompression(compression)) {
        case 'none':
            return new PlainNarHasher(output);
        case 'zstd': {
            // Node's decoder drops frames that follow another in one write: each write is one frame's bytes.
            const scanner = new ZstdFrameScanner(limits ? { refuseSkippable: true, maxWindowBytes: limits.maxDecompressionMemory } : {});
            return new StreamNarHasher(output, createZstdDecoder(limits?.maxDecompressionMemory), (chunk, write) => scanner.split(chunk, write), () => scanner.finish());
        }
        case 'xz':
            // The program's stdin may still hold a written chunk after its callback: it gets a copy.
            return new StreamNarHasher(output, createDecompressor('xz', { maxMemory: limits?.maxDecompressionMemory }), (chunk, write) => write(Buffer.from(chunk)));
    }
}
/** Hashes and counts the NAR as it comes out of the decompressor, and checks it against the limits. */
class NarOutput {
    limits;
    hasher = (0,external_node_crypto_namespaceObject.createHash)('sha256');
    structure;
    size = 0;
    /** Compressed bytes given to the decompressor so far. */
    fed = 0;
    constructor(limits) {
        this.limits = limits;
        this.structure = limits ? new NarStructureChecker() : undefined;
    }
    /** Takes the next NAR bytes; throws if they break the format or a limit. */
    take(chunk) {
        this.structure?.update(chunk);
        this.hasher.update(chunk);
        this.size += chunk.length;
        const limits = this.limits;
        if (!limits || !this.structure)
            return;
        if (this.structure.declaredSize > limits.maxNarSize) {
            throw new NarLimitError(`the NAR is larger than the limit of ${limits.maxNarSize} bytes` +
                (this.structure.declaredSize > this.size
                    ? ' (it declares a file that takes it past the limit)'
                    : ''), 'nar_size');
        }
        if (limits.maxRatio > 0 && this.size > RATIO_FLOOR_BYTES && this.size > limits.maxRatio * this.fed) {
            throw new NarLimitError(`the upload decompresses to more than ${limits.maxRatio} times its size ` +
                `(${this.size} NAR bytes from ${this.fed} bytes so far)`, 'compression_ratio');
        }
    }
    digest() {
        this.structure?.end();
        return { narHash: new Hash('sha256', this.hasher.digest()), narSize: this.size };
    }
}
class PlainNarHasher {
    output;
    constructor(output) {
        this.output = output;
    }
    write(chunk) {
        this.output.fed += chunk.length;
        try {
            this.output.take(chunk);
        }
        catch (error) {
            return Promise.reject(error);
        }
        return Promise.resolve();
    }
    async end() {
        return this.output.digest();
    }
    destroy() { }
}
/** A decompressor whose output is hashed as it comes ('data' events, no queue, nothing piped). */
class StreamNarHasher {
    output;
    decompressor;
    feed;
    checkEnd;
    failure;
    /** Settles the promise of the write in progress. */
    settle;
    constructor(output, decompressor, 
    /** Writes `chunk` into the decompressor, in one or more pieces. */
    feed, 
    /** Throws if the input so far cannot be a whole file. */
    checkEnd = () => undefined) {
        this.output = output;
        this.decompressor = decompressor;
        this.feed = feed;
        this.checkEnd = checkEnd;
        decompressor.on('data', (chunk) => {
            if (this.failure)
                return;
            try {
                output.take(chunk);
                releaseSpent(chunk);
            }
            catch (error) {
                // Not one more byte inflated for an upload that is refused anyway.
                this.fail(error);
                decompressor.destroy();
            }
        });
        decompressor.on('error', (error) => this.fail(error));
        decompressor.on('close', () => {
            if (!decompressor.readableEnded)
                this.fail(new Error('the decompressor closed early'));
        });
    }
    fail(error) {
        this.failure ??= error;
        this.settle?.(this.failure);
    }
    write(chunk) {
        if (this.failure)
            return Promise.reject(this.failure);
        const pieces = [];
        try {
            this.feed(chunk, (piece) => pieces.push(piece));
        }
        catch (error) {
            this.failure ??= error;
            return Promise.reject(this.failure);
        }
        this.output.fed += chunk.length;
        if (pieces.length === 0)
            return Promise.resolve();
        return new Promise((resolve, reject) => {
            this.settle = (error) => {
                this.settle = undefined;
                if (error)
                    reject(error);
                else
                    resolve();
            };
            // Write callbacks run in order: the last one means every piece is consumed.
            for (const [i, piece] of pieces.entries()) {
                this.decompressor.write(piece, i === pieces.length - 1 ? (error) => this.settle?.(error) : undefined);
            }
        });
    }
    async end() {
        if (this.failure)
            throw this.failure;
        this.checkEnd();
        this.decompressor.end();
        // A decompressor stopped by a refusal ends "prematurely": the refusal is the news.
        await (0,promises_namespaceObject.finished)(this.decompressor).catch((error) => {
            throw this.failure ?? error;
        });
        if (this.failure)
            throw this.failure;
        return this.output.digest();
    }
    destroy() {
        this.decompressor.destroy();
    }
}

;// CONCATENATED MODULE: external "node:v8"
const external_node_v8_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:v8");
;// CONCATENATED MODULE: external "node:vm"
const external_node_vm_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:vm");
;// CONCATENATED MODULE: ./src/nix/gc-pacer.ts
/**
 * Garbage collections paced by the bytes of buffers a thread has finished with. Node gives each
 * socket read and each zlib output a fresh buffer; V8 frees one only when it collects its small JS
 * object, and a byte path allocates too few JS objects for collections to come often: spent
 * buffers piled up by tens of MB before V8's external-memory limit started one. A young
 * collection every few MiB (well under a millisecond) frees those that die young. Those that may
 * live long enough to be promoted are freed as they are spent instead (`releaseSpent` in
 * buffer-pool.ts): the full collections that freed them cost the push ~0.5 s of CPU per GiB.
 */


class GcPacer {
    pace;
    sinceMinor = 0;
    collect;
    constructor(pace) {
        this.pace = pace;
        if (pace.collector === 'exposed')
            this.collect = globalThis.gc;
    }
    /** `bytes` of buffers were used and dropped. */
    spent(bytes) {
        this.sinceMinor += bytes;
        if (this.sinceMinor < this.pace.minorEveryBytes)
            return;
        this.sinceMinor = 0;
        if (!this.collect && this.pace.collector === 'thread')
            this.collect = threadCollector();
        this.collect?.({ type: 'minor' });
    }
}
let exposed;
function threadCollector() {
    if (!exposed) {
        (0,external_node_v8_namespaceObject.setFlagsFromString)('--expose-gc');
        exposed = (0,external_node_vm_namespaceObject.runInNewContext)('gc');
    }
    return exposed;
}

;// CONCATENATED MODULE: ./src/server/cache/verify-worker.ts
/**
 * A verification worker (a thread, started by verify-pool.ts): for each upload it is given, it
 * counts and, if asked, hashes the file as uploaded (FileSize, FileHash), decompresses it and
 * hashes and checks the NAR inside (NarHash/NarSize, structure, size, ratio and decoder-memory
 * limits: nar-hasher.ts), on the bytes the main thread received, as they arrive. The main thread
 * meanwhile only receives and stores, so on a machine with two cores both work, and the worker's
 * small heap makes the decompressor's buffers cheap to collect.
 *
 * A refusal is sent as soon as it is known; the main thread then fails the upload's body, so the
 * store keeps nothing.
 */








/** The answer to a failed decompression or check: what was refused and why. */
function refusal(error, compression) {
    if (error instanceof HttpError)
        return error;
    if (error instanceof NarLimitError) {
        return new HttpError(413, error.message, error.limit === 'nar_size' ? 'too_large' : error.limit);
    }
    if (error instanceof NarFormatError)
        return new HttpError(400, error.message, error.reason);
    if (error instanceof ZstdSkippableFrameError)
        return new HttpError(400, error.message, 'padding');
    if (error instanceof ZstdWindowError || error instanceof DecompressionMemoryError) {
        return new HttpError(400, `${error.message} (max_decompression_memory)`, 'decompression_memory');
    }
    return new HttpError(400, `NAR file does not decompress as ${compression}: ${error.message}`, 'corrupt_nar');
}
/** The refusal as it travels to the main thread. */
function refusalMessage(error, compression) {
    const { status, message, reason } = refusal(error, compression);
    return { status, message, reason };
}
/**
 * What hashing leaves behind: the decompressor's output buffers are freed as they are hashed
 * (`releaseSpent`); their small JS objects die young.
 */
const pacer = new GcPacer({ minorEveryBytes: 4 * 1024 * 1024, collector: 'thread' });
function runVerifyWorker(port = external_node_worker_threads_namespaceObject.parentPort) {
    if (!port)
        throw new Error('the verification worker runs only as a worker thread');
    const sessions = new Map();
    const post = (message) => port.postMessage(message);
    const refuse = (id, session, error) => {
        if (session.refused)
            return;
        session.refused = true;
        sessions.delete(id);
        session.nar.destroy();
        post({ type: 'refused', id, refusal: refusalMessage(error, session.compression) });
    };
    /** Runs `step` after the session's earlier work, unless it was refused or ended meanwhile. */
    const then = (id, session, step) => {
        session.work = session.work.then(async () => {
            if (session.refused || sessions.get(id) !== session)
                return;
            try {
                await step();
            }
            catch (error) {
                refuse(id, session, error);
            }
        });
    };
    port.on('message', (message) => {
        if (message.type === 'start') {
            const { id, compression, limits, hashFile } = message;
            let nar;
            try {
                nar = createNarHasher(compression, limits);
            }
            catch (error) {
                post({ type: 'refused', id, refusal: refusalMessage(error, compression) });
                return;
            }
            const file = hashFile ? new FileHasher() : undefined;
            sessions.set(id, { compression, file, fileSize: 0, nar, work: Promise.resolve(), refused: false });
            return;
        }
        const session = sessions.get(message.id);
        if (!session)
            return;
        const { id } = message;
        switch (message.type) {
            case 'chunk': {
                const chunk = Buffer.from(message.bytes, 0, message.length);
                then(id, session, async () => {
                    session.file?.update(chunk);
                    session.fileSize += chunk.length;
                    await session.nar.write(chunk);
                    post({ type: 'consumed', id });
                    pacer.spent(chunk.length);
                });
                return;
            }
            case 'end':
                then(id, session, async () => {
                    const nar = await session.nar.end();
                    const fileHash = session.file?.digest().fileHash;
                    sessions.delete(id);
                    post({
                        type: 'digest',
                        id,
                        digest: {
                            ...(fileHash && { fileHash: new Uint8Array(fileHash.digest) }),
                            fileSize: session.fileSize,
                            narHash: new Uint8Array(nar.narHash.digest),
                            narSize: nar.narSize,
                        },
                    });
                });
                return;
            case 'destroy':
                sessions.delete(id);
                session.nar.destroy();
                return;
        }
    });
}

;// CONCATENATED MODULE: ./src/entrypoints/verify-worker.ts

runVerifyWorker();

