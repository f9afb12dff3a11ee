/**
 * Batch lookups as lines of one long request (`POST /_api/v1/narinfos/stream`,
 * src/server/http/narinfo-stream-handler.ts): a batch costs a line each way on an open connection
 * instead of an HTTP request and answer (a third of the daemon's CPU per batch, less on the server).
 *
 * The stream is an optimisation only: `lookup` answers undefined whenever it cannot answer (no
 * stream yet, one that ended or failed, an error line), and the caller then asks the batch route,
 * which retries, refreshes the token and reports errors as it always did. A server without the
 * route, or anything in between that holds the request body back until it ends (a buffering
 * reverse proxy: no answer's headers within `firstAnswerMs`), turns streams off for the job.
 */
import type { ClientRequest } from 'node:http';
import { NARINFO_STREAM_PATH } from '../../contracts/narinfo-batch.js';
import type { Logger } from '../report/daemon-log.js';
import { batchRouteMissing } from './batch-lookup.js';
import type { Upstream } from './upstream-client.js';

export interface NarInfoStreamOptions {
  /**
   * Without the answer's headers in this time, streams are off for the job. The server sends them
   * as soon as the token is checked; a proxy that holds the body back never forwards the request.
   */
  firstAnswerMs: number;
  /** A line unanswered this long ends the stream (its batches go to the batch route). */
  answerTimeoutMs: number;
  /** After a stream was refused (any status but 200), how long before another is tried. */
  retryAfterMs: number;
}

export const NARINFO_STREAM_DEFAULTS: NarInfoStreamOptions = {
  firstAnswerMs: 2_000,
  answerTimeoutMs: 15_000,
  retryAfterMs: 30_000,
};

type Answers = Record<string, unknown>;

/** One open stream: lines written, answers matched to them by id. */
class OpenStream {
  private readonly waiting = new Map<number, (answers: Answers | undefined) => void>();
  private nextId = 1;
  private buffered = '';
  private responded = false;
  private timer: NodeJS.Timeout | undefined;
  ended = false;

  constructor(
    private readonly request: ClientRequest,
    private readonly options: NarInfoStreamOptions,
    /** Called once, when the stream ends; `status` when the server refused it. */
    private readonly onEnd: (why: { status?: number; buffered?: boolean }) => void,
  ) {
    request.on('response', (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        this.end({ status: response.statusCode ?? 0 });
        return;
      }
      this.responded = true;
      clearTimeout(this.timer);
      this.timer = undefined;
      this.arm();
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => this.take(chunk));
      response.on('end', () => this.end({}));
      response.on('error', () => this.end({}));
    });
    request.on('error', () => this.end({}));
    request.on('close', () => this.end({}));
  }

  ask(hashParts: string[]): Promise<Answers | undefined> {
    if (this.ended) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.request.write(`${JSON.stringify({ id, hashParts })}\n`);
      this.arm();
    });
  }

  close(): void {
    this.end({});
  }

  /** The oldest line's deadline; before the answer's headers, the short one (a buffering proxy never sends them). */
  private arm(): void {
    if (this.timer || this.waiting.size === 0) return;
    const ms = this.responded ? this.options.answerTimeoutMs : this.options.firstAnswerMs;
    this.timer = setTimeout(() => this.end({ buffered: !this.responded }), ms);
    this.timer.unref();
  }

  private take(chunk: string): void {
    this.buffered += chunk;
    for (let newline = this.buffered.indexOf('\n'); newline >= 0; newline = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, newline);
      this.buffered = this.buffered.slice(newline + 1);
      let reply: { id?: unknown; narinfos?: unknown };
      try {
        reply = JSON.parse(line) as typeof reply;
      } catch {
        return this.end({});
      }
      const resolve = typeof reply.id === 'number' ? this.waiting.get(reply.id) : undefined;
      if (!resolve) continue;
      this.waiting.delete(reply.id as number);
      const narinfos = reply.narinfos;
      resolve(typeof narinfos === 'object' && narinfos !== null ? (narinfos as Answers) : undefined);
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.arm();
  }

  private end(why: { status?: number; buffered?: boolean }): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    // The server ended its answer: the request body it no longer reads goes too, with the
    // connection (a stream's own), or both ends would keep it open.
    this.request.destroy();
    for (const resolve of this.waiting.values()) resolve(undefined);
    this.waiting.clear();
    this.onEnd(why);
  }
}

export class NarInfoStream {
  private current: OpenStream | undefined;
  private off = false;
  private refusedAt = -Infinity;
  /** Batches answered over streams, for the stats. */
  answered = 0;

  constructor(
    private readonly server: Upstream,
    private readonly log: Logger,
    private readonly options: NarInfoStreamOptions = NARINFO_STREAM_DEFAULTS,
  ) {}

  /** The answers for a batch of hash parts (hits only), or undefined: ask the batch route. */
  async lookup(hashParts: string[]): Promise<Answers | undefined> {
    if (this.off || Date.now() - this.refusedAt < this.options.retryAfterMs) return undefined;
    this.current ??= this.open();
    const answers = await this.current.ask(hashParts);
    if (answers) this.answered++;
    return answers;
  }

  close(): void {
    this.current?.close();
  }

  private open(): OpenStream {
    const request = this.server.openDuplex(NARINFO_STREAM_PATH, { 'content-type': 'application/x-ndjson' });
    const stream: OpenStream = new OpenStream(request, this.options, (why) => {
      if (this.current === stream) this.current = undefined;
      if (why.buffered) {
        this.off = true;
        this.log.info(
          'no answer on the narinfo stream (a proxy in between holds request bodies back?): batch lookups from now on',
        );
      } else if (why.status !== undefined) {
        if (batchRouteMissing(why.status)) this.off = true;
        else this.refusedAt = Date.now();
      }
    });
    return stream;
  }
}
