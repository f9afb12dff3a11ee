/**
 * The Action's side of the daemon: `/_sluice/built` (post-build hook), `/_sluice/drain` (post
 * step, with a deadline that is always kept), `/_sluice/stats`, `/_sluice/health` and
 * `/_sluice/shutdown`. Bodies are JSON; bad ones get a 400 naming the problem.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  controlPath,
  ControlRoute,
  MAX_DRAIN_DEADLINE_SECONDS,
  type DaemonHealth,
} from '../../contracts/control-api.js';
import { HttpError } from '../../contracts/http-error.js';
import { StorePath, StorePathError } from '../../nix/store-path.js';
import type { Logger } from '../report/daemon-log.js';
import { methodNotAllowed } from '../pull/nix-routes.js';
import type { BuiltPaths } from '../push/built-paths.js';
import type { Pinner } from '../push/pinner.js';
import type { Stats } from '../report/stats.js';

/** A store diff of a big job can list tens of thousands of paths. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface ControlContext {
  stats: Stats;
  /** Absent when pushing is disabled. */
  queue?: BuiltPaths;
  /** GitHub cache mode: `POST /_sluice/pack` writes the job's new pack (body: JSON, answer: JSON). */
  pack?: (body: Record<string, unknown>) => Promise<unknown>;
  log: Logger;
  health: () => DaemonHealth;
  /** Starts the shutdown once the answer is sent. */
  shutdown: () => void;
  /** With the Action's `pin` input: told the paths the job produced, pins them after a full drain. */
  pinner?: Pinner;
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`, 'too_large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `request body is not JSON: ${(e as Error).message}`, 'bad_json');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new HttpError(400, 'request body must be a JSON object', 'bad_json');
  }
  return json as Record<string, unknown>;
}

function storePathField(value: unknown, field: string): string {
  if (typeof value !== 'string')
    throw new HttpError(400, `${field} must be a store path string`, 'bad_request');
  try {
    StorePath.parse(value);
  } catch (e) {
    if (e instanceof StorePathError) throw new HttpError(400, `${field}: ${e.message}`, 'bad_request');
    throw e;
  }
  return value;
}

function storePathsField(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new HttpError(400, `${field} must be an array of store paths`, 'bad_request');
  return value.map((p, i) => storePathField(p, `${field}[${i}]`));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function handleControl(
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
  ctx: ControlContext,
): Promise<void> {
  const method = req.method ?? 'GET';
  const expect = (allowed: 'GET' | 'POST'): void => {
    if (method !== allowed) throw methodNotAllowed(method, allowed);
  };
  switch (pathname) {
    case controlPath(ControlRoute.Health):
      expect('GET');
      return sendJson(res, 200, ctx.health());
    case controlPath(ControlRoute.Stats):
      expect('GET');
      return sendJson(res, 200, ctx.stats.toJSON());
    case controlPath(ControlRoute.Built):
      expect('POST');
      return built(req, res, ctx);
    case controlPath(ControlRoute.Drain):
      expect('POST');
      return drain(req, res, ctx);
    case controlPath(ControlRoute.Pack):
      expect('POST');
      if (!ctx.pack) throw new HttpError(404, 'this proxy is not in GitHub cache mode', 'not_found');
      return sendJson(res, 200, await ctx.pack(await readJsonBody(req)));
    case controlPath(ControlRoute.Shutdown):
      expect('POST');
      sendJson(res, 200, { shuttingDown: true });
      res.once('finish', ctx.shutdown);
      return;
    default:
      throw new HttpError(404, `no control endpoint ${pathname}`, 'not_found');
  }
}

/** Answers at once (the hook blocks the build) and resolves derivation outputs in the background. */
async function built(req: IncomingMessage, res: ServerResponse, ctx: ControlContext): Promise<void> {
  const body = await readJsonBody(req);
  const outPaths = storePathsField(body.outPaths, 'outPaths');
  const drvPath =
    body.drvPath === undefined || body.drvPath === '' ? undefined : storePathField(body.drvPath, 'drvPath');
  if (outPaths.length === 0 && drvPath === undefined) {
    throw new HttpError(400, 'give outPaths or drvPath', 'bad_request');
  }
  const queue = ctx.queue;
  ctx.pinner?.add(outPaths);
  sendJson(res, 202, { pushing: queue !== undefined });
  if (!queue) return;
  if (outPaths.length > 0) queue.enqueue(outPaths);
  else await queue.enqueueOutputsOf(drvPath!);
}

async function drain(req: IncomingMessage, res: ServerResponse, ctx: ControlContext): Promise<void> {
  const body = await readJsonBody(req);
  const deadlineSeconds = body.deadlineSeconds;
  if (
    typeof deadlineSeconds !== 'number' ||
    !(deadlineSeconds >= 0) ||
    deadlineSeconds > MAX_DRAIN_DEADLINE_SECONDS
  ) {
    throw new HttpError(
      400,
      `deadlineSeconds must be a number from 0 to ${MAX_DRAIN_DEADLINE_SECONDS}`,
      'bad_request',
    );
  }
  const paths = storePathsField(body.paths, 'paths');
  const queue = ctx.queue;
  if (queue) {
    queue.enqueue(paths);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deadlineSeconds * 1000);
    });
    await Promise.race([queue.idle(), deadline]);
    clearTimeout(timer);
    ctx.log.info({ queued: queue.queued }, queue.isIdle ? 'drained' : 'drain deadline reached');
    // Pinned only once everything is pushed: a pin names paths the slice must already hold.
    if (ctx.pinner && queue.isIdle) {
      ctx.pinner.add(paths);
      await ctx.pinner.pin();
    }
  }
  sendJson(res, 200, ctx.stats.toJSON());
}
