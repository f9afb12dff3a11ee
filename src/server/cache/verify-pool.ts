/**
 * The server's verification threads: a few workers (verify-worker.ts), started on first use, that
 * hash, decompress and check uploads while the main thread receives and stores them. Each upload
 * is a session on the worker with the fewest; a worker that stops (a crash, its heap limit) fails
 * the uploads it held with a 503, so their bodies fail and the store keeps nothing, and the next
 * upload starts a new one.
 */
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { HttpError } from '../../contracts/http-error.js';
import { Hash } from '../../nix/hash.js';
import type { NarLimits } from '../../nix/nar-hasher.js';
import type { NarCompression } from '../../nix/nar.js';
import type { DigestMessage, FromWorker, ToWorker } from './verify-protocol.js';

export interface NarFileDigest {
  /** The file's sha256, when the session was asked for it. */
  fileHash?: Hash;
  fileSize: number;
  narHash: Hash;
  narSize: number;
}

/** One upload's check, running on a worker. */
export interface UploadCheck {
  /**
   * Checks the next bytes: `chunk` must be a whole SharedArrayBuffer's start (a `sharedStage`).
   * Resolves once the worker is done with them (the buffer may be filled again); rejects with the
   * HttpError the upload is refused with.
   */
  write(chunk: Buffer): Promise<void>;
  /** The digests, once every check passed at the file's end; rejects with the refusal otherwise. */
  end(): Promise<NarFileDigest>;
  /** Stops the check (the upload failed or was refused); the worker frees the session. */
  destroy(): void;
}

export interface VerifyPoolOptions {
  /** Workers at most; default: one per core but one (the main thread's), at least 1, at most 4. */
  threads?: number;
  /** The worker's script (`.ts` runs from the sources); default: the `verify-worker` bundle beside this one, or the sources. */
  script?: string;
}

/** Seconds a client waits before retrying an upload whose worker stopped. */
const RETRY_AFTER_SECONDS = '2';

/** A worker's heap holds a few sessions' hashers and decompressor buffers; past this it is stopped. */
const WORKER_LIMITS = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 4 };

const here = fileURLToPath(import.meta.url);

/**
 * Bundled (dist/cli/...), the worker is its own bundle, dist/verify-worker/index.js. Run from the
 * TypeScript sources (the tests, `sluice` from a checkout), it is the entry point's source, loaded
 * with types stripped and `.js` imports mapped to `.ts` as ts-jest and the bench do.
 */
function workerStart(script?: string): { script: string; eval: boolean } {
  if (script !== undefined) return { script, eval: script.endsWith('.ts') };
  if (!here.endsWith('.ts'))
    return { script: join(dirname(here), '..', 'verify-worker', 'index.js'), eval: false };
  return { script: join(dirname(here), '..', '..', 'entrypoints', 'verify-worker.ts'), eval: true };
}

const FROM_SOURCES = `
const { registerHooks } = require('node:module');
const { pathToFileURL } = require('node:url');
registerHooks({
  resolve(specifier, context, next) {
    try {
      return next(specifier, context);
    } catch (error) {
      if (/^\\.\\.?\\/.*\\.js$/.test(specifier)) return next(specifier.slice(0, -3) + '.ts', context);
      throw error;
    }
  },
});
import(pathToFileURL(require('node:worker_threads').workerData.script).href);
`;

interface Waiter {
  resolve: (value: never) => void;
  reject: (error: Error) => void;
}

/** The main thread's side of a session: what it waits for, and how it ended. */
class Session implements UploadCheck {
  private readonly consumed: Waiter[] = [];
  private digest: Waiter | undefined;
  failure: HttpError | undefined;
  private done = false;

  constructor(
    readonly id: number,
    private readonly slot: Slot,
  ) {}

  write(chunk: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const bytes = chunk.buffer;
    if (!(bytes instanceof SharedArrayBuffer) || chunk.byteOffset !== 0) {
      throw new Error('upload checks take chunks at the start of a SharedArrayBuffer');
    }
    return new Promise<void>((resolve, reject) => {
      this.consumed.push({ resolve: resolve as (value: never) => void, reject });
      this.slot.send({ type: 'chunk', id: this.id, bytes, length: chunk.length });
    });
  }

  end(): Promise<NarFileDigest> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<DigestMessage>((resolve, reject) => {
      this.digest = { resolve: resolve as (value: never) => void, reject };
      this.slot.send({ type: 'end', id: this.id });
    }).then((digest) => ({
      ...(digest.fileHash && { fileHash: new Hash('sha256', Buffer.from(digest.fileHash)) }),
      fileSize: digest.fileSize,
      narHash: new Hash('sha256', Buffer.from(digest.narHash)),
      narSize: digest.narSize,
    }));
  }

  destroy(): void {
    if (this.done) return;
    this.done = true;
    this.slot.sessions.delete(this.id);
    if (!this.failure) this.slot.send({ type: 'destroy', id: this.id });
    this.fail(new HttpError(500, 'the upload check was stopped', 'stopped'));
  }

  /** A message from the worker about this session. */
  receive(message: FromWorker): void {
    switch (message.type) {
      case 'consumed':
        this.consumed.shift()?.resolve(undefined as never);
        return;
      case 'digest':
        this.done = true;
        this.slot.sessions.delete(this.id);
        this.digest?.resolve(message.digest as never);
        return;
      case 'refused': {
        const { status, message: text, reason } = message.refusal;
        this.fail(new HttpError(status, text, reason));
        return;
      }
    }
  }

  fail(error: HttpError): void {
    this.failure ??= error;
    for (const waiter of this.consumed.splice(0)) waiter.reject(this.failure);
    this.digest?.reject(this.failure);
    this.digest = undefined;
  }
}

/** A worker and the sessions it holds. */
class Slot {
  readonly sessions = new Map<number, Session>();
  private stopped: HttpError | undefined;

  constructor(
    private readonly worker: Worker,
    onExit: (slot: Slot) => void,
  ) {
    worker.on('message', (message: FromWorker) => this.sessions.get(message.id)?.receive(message));
    let cause = 'it exited';
    worker.on('error', (error) => (cause = error.message));
    worker.on('exit', (code) => {
      this.stopped = new HttpError(
        503,
        `the upload could not be verified: its verification thread stopped (${cause}, code ${code}); ` +
          'nothing was stored, retry',
        'verifier_stopped',
        { 'retry-after': RETRY_AFTER_SECONDS },
      );
      for (const session of this.sessions.values()) session.fail(this.stopped);
      this.sessions.clear();
      onExit(this);
    });
    // Uploads keep the process alive while they run; an idle worker must not.
    worker.unref();
  }

  send(message: ToWorker): void {
    if (this.stopped) {
      // The exit handler failed every session already; a late message has nowhere to go.
      return;
    }
    this.worker.postMessage(message);
  }

  /** Stops the thread (its sessions fail as for a crash). */
  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class VerifyPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  readonly threads: number;
  private readonly start: { script: string; eval: boolean };

  constructor(options: VerifyPoolOptions = {}) {
    this.threads = Math.max(1, options.threads ?? Math.min(4, availableParallelism() - 1));
    this.start = workerStart(options.script);
  }

  /**
   * A check for one upload, on the least busy worker (a new one while there are fewer than
   * `threads`). Without `hashFile` the digest has no FileHash, and the worker one pass less.
   */
  session(compression: NarCompression, limits: NarLimits, hashFile = true): UploadCheck {
    let slot = this.slots.reduce<Slot | undefined>(
      (best, candidate) => (best && best.sessions.size <= candidate.sessions.size ? best : candidate),
      undefined,
    );
    if (!slot || (slot.sessions.size > 0 && this.slots.length < this.threads)) slot = this.spawn();
    const session = new Session(this.nextId++, slot);
    slot.sessions.set(session.id, session);
    slot.send({ type: 'start', id: session.id, compression, limits, hashFile });
    return session;
  }

  /** Workers running now. */
  get running(): number {
    return this.slots.length;
  }

  /** Stops every worker; uploads still being checked fail with a 503. */
  async close(): Promise<void> {
    await Promise.all(this.slots.map((slot) => slot.terminate()));
  }

  private spawn(): Slot {
    const { script, eval: fromSources } = this.start;
    const worker = fromSources
      ? new Worker(FROM_SOURCES, {
          eval: true,
          workerData: { script },
          execArgv: ['--experimental-transform-types', '--disable-warning=ExperimentalWarning'],
          resourceLimits: WORKER_LIMITS,
        })
      : new Worker(script, { execArgv: [], resourceLimits: WORKER_LIMITS });
    const slot = new Slot(worker, (stopped) => this.slots.splice(this.slots.indexOf(stopped), 1));
    this.slots.push(slot);
    return slot;
  }
}
