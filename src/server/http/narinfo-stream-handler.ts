/**
 * `POST /_api/v1/narinfos/stream`: the batch lookups of one job's proxy over one long request, so
 * that a batch costs a line each way instead of an HTTP request and answer. The request body is
 * lines of `{"id": N, "hashParts": [...]}` (the batch route's body plus an id; the union of readable
 * slices only); the answer, sent as they are done and in order, lines of `{"id": N, "narinfos":
 * {...}}`, or `{"id": N, "error": "..."}` for a line that could not be answered, after which the
 * stream ends. The token is checked once, when the stream opens: so the stream ends at the token's
 * expiry, `lifetimeMs` after it opened (a revoked read token stops within that), and after
 * `idleMs` without a line. The lines received before the end are answered; the proxy opens another
 * stream, or uses the batch route, for the rest.
 */
import { once } from 'node:events';
import { HttpError } from '../../contracts/http-error.js';
import { NARINFO_STREAM_LIMITS } from '../../contracts/narinfo-batch.js';
import type { CacheService } from '../cache/cache-service.js';
import { acceptBody } from './body.js';
import type { CacheRequest } from './cache-handlers.js';
import { checkBatchJson, lookupAccess, NARINFO_BATCH_BODY_LIMIT } from './narinfo-batch-handler.js';

/** Lines read ahead of the one being answered; beyond it the request is paused (backpressure). */
const LINES_AHEAD = 16;

/** A line that cannot be answered: its message, and its id when it has one. */
class LineError extends HttpError {
  constructor(
    message: string,
    readonly id?: number,
  ) {
    super(400, message, 'bad_request');
  }
}

/** A line's id and hash parts; a LineError names the problem (and the line's id, if it has one). */
function parseStreamLine(line: string): { id: number; hashParts: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (error) {
    throw new LineError(`a line is not JSON: ${(error as Error).message}`);
  }
  const raw = (json as { id?: unknown } | null)?.id;
  const id = Number.isSafeInteger(raw) && (raw as number) >= 0 ? (raw as number) : undefined;
  if (id === undefined)
    throw new LineError(`a line's "id" ${JSON.stringify(raw)?.slice(0, 40)} is not a whole number`);
  try {
    const { hashParts, scope } = checkBatchJson(json, 'a line');
    if (scope !== 'union')
      throw new LineError(
        'a stream line asks the union of readable slices: use the batch route for "scope"',
        id,
      );
    return { id, hashParts };
  } catch (error) {
    throw error instanceof LineError ? error : new LineError((error as Error).message, id);
  }
}

export async function streamNarInfos(
  cache: CacheService,
  request: CacheRequest,
  publicReads: boolean,
): Promise<void> {
  const { req, res } = request;
  const access = await lookupAccess(request, publicReads);
  acceptBody(req, res);
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'private, no-store' });
  res.flushHeaders();
  const expiresAt = access.grant?.expiresAt === undefined ? Infinity : access.grant.expiresAt * 1000;
  const lifetime = Math.max(0, Math.min(NARINFO_STREAM_LIMITS.lifetimeMs, expiresAt - Date.now()));

  let stopped = false;
  let failed = false;
  let pending = '';
  let queued = 0;
  let answering: Promise<void> = Promise.resolve();
  const ended = new Promise<void>((resolve) => {
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      clearTimeout(lifeTimer);
      clearTimeout(idleTimer);
      req.off('data', onData);
      void answering.then(() => {
        if (!res.destroyed) res.end();
        resolve();
      });
    };
    const write = async (reply: object): Promise<void> => {
      if (res.destroyed) return;
      if (!res.write(`${JSON.stringify(reply)}\n`))
        await Promise.race([once(res, 'drain'), once(res, 'close')]);
    };
    /** An error line ends the stream: the proxy asks the batch route, which answers it properly. */
    const fail = (reply: object): Promise<void> => {
      failed = true;
      stop();
      return write(reply);
    };
    const answer = async (line: string): Promise<void> => {
      if (failed) return;
      let id: number | undefined;
      try {
        const parsed = parseStreamLine(line);
        id = parsed.id;
        await write({ id, narinfos: await cache.narInfos(parsed.hashParts, access) });
      } catch (error) {
        id = error instanceof LineError ? error.id : id;
        const message = error instanceof HttpError ? error.message : 'the lookup failed';
        await fail({ ...(id === undefined ? {} : { id }), error: message });
      }
      if (--queued < LINES_AHEAD && req.isPaused()) req.resume();
    };
    const onData = (chunk: string): void => {
      idleTimer.refresh();
      pending += chunk;
      for (let newline = pending.indexOf('\n'); newline >= 0 && !stopped; newline = pending.indexOf('\n')) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        queued++;
        answering = answering.then(() => answer(line));
        if (queued >= LINES_AHEAD) req.pause();
      }
      if (pending.length > NARINFO_BATCH_BODY_LIMIT && !stopped) {
        // Nothing more is read; the lines before it are answered first.
        req.off('data', onData);
        pending = '';
        const error = `a line longer than ${NARINFO_BATCH_BODY_LIMIT} bytes`;
        answering = answering.then(() => fail({ error }));
      }
    };
    const lifeTimer = setTimeout(stop, lifetime);
    const idleTimer = setTimeout(stop, NARINFO_STREAM_LIMITS.idleMs);
    req.setEncoding('utf8');
    req.on('data', onData);
    req.once('end', stop);
    req.once('error', stop);
    res.once('close', stop);
  });
  await ended;
}
