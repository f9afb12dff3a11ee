/**
 * The daemon with the real server, real Nix and a real cache token from the real exchange: Nix
 * substitutes through it; built paths get pushed (exactly the new ones); retries; token refresh.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StorePath } from '../../src/nix/store-path.js';
import { NARINFO_BATCH_LIMIT, RECENT_NARINFOS_PATH } from '../../src/contracts/narinfo-batch.js';
import { NAR_LINKS_PATH } from '../../src/contracts/nar-links.js';
import { PATH_BATCH_PATH } from '../../src/contracts/path-batch.js';
import { addTinyPaths, makeNixMachine, nix, nixBuild, randomChainExpr, salt } from '../support/nix.js';
import { createLogger, Secrets } from '../../src/proxy/report/daemon-log.js';
import {
  DEFAULT_READAHEAD,
  PAGE_BYTES,
  parseCandidate,
  Readahead,
  substitutionOrder,
} from '../../src/proxy/pull/readahead.js';
import { Upstream } from '../../src/proxy/upstream/upstream-client.js';
import { substituteFresh } from '../support/server.js';
import { refusedUrl, startTestDaemon } from './helpers.js';
import { startFront, startStack, startStaticCache, type Stack } from './stack.js';
import { ManualClock } from '../support/clock.js';

let stack: Stack;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function daemonFor(
  server: string,
  push: Record<string, unknown> | undefined,
  extra: Record<string, unknown> = {},
) {
  const grant = await stack.cacheToken();
  const d = await startTestDaemon({
    server,
    token: grant.token,
    tokenExpiresAt: grant.expiresAt,
    read: grant.read,
    write: grant.write,
    ...(push ? { push: { enabled: true, upstreamCaches: [], ...push } } : {}),
    ...extra,
  });
  cleanups.push(() => d.close());
  return { d, token: grant.token };
}

/** Puts paths on the server through a daemon of their own (the push engine under test elsewhere). */
async function pushToServer(paths: string[]): Promise<void> {
  const { d } = await daemonFor(stack.server.url, {});
  const stats = (await d.control('drain', { deadlineSeconds: 60, paths })).json;
  if (stats.failed.length > 0 || stats.queued > 0)
    throw new Error(`could not seed the cache: ${JSON.stringify(stats)}`);
  await d.close();
}

/** Substitutes `path` into a brand-new store through `substituter`, trusting the server's key. */
async function substituteIntoFreshStore(path: string, substituter: string): Promise<string> {
  const store = mkdtempSync(join(tmpdir(), 'sluice-store-'));
  const machine = makeNixMachine();
  await nix(
    'nix-store',
    [
      '--store',
      store,
      '-r',
      path,
      '--option',
      'substituters',
      substituter,
      '--option',
      'trusted-public-keys',
      stack.server.publicKey,
    ],
    { machine },
  );
  return (await nix('nix-store', ['--store', store, '-qR', path], { machine })).trim();
}

async function narinfoStatus(path: string, token: string): Promise<number> {
  const response = await fetch(`${stack.server.url}/${StorePath.parse(path).hashPart}.narinfo`, {
    headers: { authorization: `Bearer ${token}` },
  });
  await response.arrayBuffer();
  return response.status;
}

/** How the paths went up through `front`: in batches (how many, with how many paths), or alone. */
function uploadsSeen(front: { requests: string[]; posted: { url: string; body: string }[] }) {
  const count = (pattern: RegExp) => front.requests.filter((r) => pattern.test(r)).length;
  const batchBodies = front.posted.filter((p) => p.url === PATH_BATCH_PATH).map((p) => p.body);
  return {
    batches: count(/^POST \/_api\/v1\/paths$/),
    batched: batchBodies.flatMap((body) => body.match(/\{"store_path":"\/nix\/store\/[0-9a-z]{32}-/g) ?? [])
      .length,
    alone: count(/^PUT \/_api\/v1\/nar\//),
    narinfoPuts: count(/^PUT \/[0-9a-z]{32}\.narinfo$/),
  };
}

const drv = (name: string, tag: string, script: string) =>
  `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${tag}"; args = [ "-c" ${JSON.stringify(script)} ]; }`;

describe('proxy for Nix', () => {
  it('lets Nix substitute a closure the server has, counting hits and remembering misses', async () => {
    const [top] = await nixBuild(randomChainExpr(3, 4096));
    const closure = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
    await pushToServer([top!]);

    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const { d, token } = await daemonFor(front.url, undefined);

    const substituted = await substituteIntoFreshStore(top!, d.url);
    expect(substituted.split('\n').sort()).toEqual(closure.sort());
    let stats = (await d.control('stats')).json;
    expect(stats.hits).toBeGreaterThanOrEqual(3);
    // The NARs went from the server to Nix: redirected with a link each, no byte through the proxy.
    expect(stats.narRedirects).toBe(3);
    expect(stats.bytesDownloaded).toBe(0);
    expect(stats.paths.downloaded).toBe(3);
    expect(stats.errors).toEqual([]);
    const narGetsAtServer = front.requests.filter((r) => r.startsWith('GET /nar/'));
    expect(narGetsAtServer).toHaveLength(3);
    for (const get of narGetsAtServer) expect(get).toMatch(/^GET \/nar\/\w+\.nar\.zst\?sig=[\w-]+\.[\w-]+$/);
    // One request asked for the links of the closure.
    expect(front.posted.filter((p) => p.url === NAR_LINKS_PATH)).toHaveLength(1);

    // NARs are redirected whole or (a resumed download) by range.
    const narinfo = await (await fetch(`${d.url}/${StorePath.parse(top!).hashPart}.narinfo`)).text();
    const narUrl = `${d.url}/${/^URL: (.*)$/m.exec(narinfo)![1]}`;
    const fileSize = Number(/^FileSize: (\d+)$/m.exec(narinfo)![1]);
    expect((await (await fetch(narUrl)).arrayBuffer()).byteLength).toBe(fileSize);
    const partial = await fetch(narUrl, { headers: { range: 'bytes=0-9' } });
    expect(partial.status).toBe(206);
    expect((await partial.arrayBuffer()).byteLength).toBe(10);

    const absent = `${d.url}/${'1'.repeat(32)}.narinfo`;
    expect((await fetch(absent)).status).toBe(404);
    expect((await fetch(absent, { method: 'HEAD' })).status).toBe(404);
    stats = (await d.control('stats')).json;
    expect(stats.misses).toBeGreaterThanOrEqual(2);
    // Answered from the narinfo set the daemon fetched at start (and brought up to date): never asked.
    expect(front.requests).toContain('GET /_api/v1/narinfo-set');
    expect(front.posted.filter((p) => p.body.includes('1'.repeat(32)))).toHaveLength(0);
    expect(d.logText()).not.toContain(token);
  });
});

describe('NAR links', () => {
  it('asks for each NAR’s link once, however many of Nix’s NAR GETs arrive at once', async () => {
    const { closure } = await seedClosure((await nixBuild(randomChainExpr(6, 2048)))[0]!);
    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const { d } = await daemonFor(front.url, undefined);
    const narPaths: string[] = [];
    for (const path of closure) {
      const narinfo = await (await fetch(`${d.url}/${StorePath.parse(path).hashPart}.narinfo`)).text();
      narPaths.push(`/${/^URL: (\S+)$/m.exec(narinfo)![1]}`);
    }
    // Every NAR asked for at once, as Nix does with several substitutions in flight.
    const answers = await Promise.all(narPaths.map((nar) => fetch(`${d.url}${nar}`, { redirect: 'manual' })));
    expect(answers.map((answer) => answer.status)).toEqual(narPaths.map(() => 302));
    const asked = front.posted
      .filter((p) => p.url === NAR_LINKS_PATH)
      .flatMap((p) => (JSON.parse(p.body) as { nars: string[] }).nars);
    expect(asked.sort()).toEqual(narPaths.map((nar) => nar.slice(1)).sort());
  });
});

/** Leaves whose names sort otherwise than their hashes, a path between, and a chain. */
async function buildMixedClosure(): Promise<string> {
  const tag = salt();
  const [top] = await nixBuild(`let
      mk = name: script: derivation {
        name = "sluice-ra-\${name}"; system = builtins.currentSystem; builder = "/bin/sh";
        salt = "${tag}"; args = [ "-c" script ];
      };
      leaf = name: mk name "/usr/bin/head -c 4096 /dev/urandom > $out";
      chain = ${randomChainExpr(3, 4096, tag)};
      mid = mk "mid" "echo \${leaf "c"} \${leaf "a"} > $out";
    in mk "top" "echo \${mid} \${leaf "b"} \${leaf "d"} \${chain} > $out"`);
  return top!;
}

/** The mixed closure on the server, a reader's token, and the narinfos the server signs for it. */
async function seedMixedClosure() {
  return seedClosure(await buildMixedClosure());
}

/** `top`'s closure on the server, a reader's token, and the narinfos the server signs for it. */
async function seedClosure(top: string) {
  const closure = (await nix('nix-store', ['-qR', top])).trim().split('\n');
  await pushToServer([top]);
  const { token } = await daemonFor(stack.server.url, undefined);
  const narinfos = await Promise.all(
    closure.map(async (path) => {
      const response = await fetch(`${stack.server.url}/${StorePath.parse(path).hashPart}.narinfo`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return response.text();
    }),
  );
  return { top, closure, token, narinfos };
}

/** The NAR paths a recording front was asked to GET, in order. */
function narGets(front: { requests: string[] }): string[] {
  return front.requests.filter((r) => r.startsWith('GET /nar/')).map((r) => r.slice('GET '.length));
}

describe('NAR readahead', () => {
  it('foresees the order in which Nix asks for NARs, closely enough', async () => {
    const { top, closure, token, narinfos } = await seedMixedClosure();
    const foreseen = substitutionOrder(narinfos.map((text) => parseCandidate(text)!)).map((c) => c.narPath);

    // Nix straight from the server (through a recording front), without the proxy.
    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const fresh = await substituteFresh({ url: front.url, publicKey: stack.server.publicKey }, top, token);
    expect(fresh.closure).toEqual([...closure].sort());
    const asked = narGets(front);
    // Each NAR Nix asks for is the next or the one after in the foreseen order (Nix finds some
    // references later than it starts substituting): the readahead fetches several at once.
    expect([...asked].sort()).toEqual([...foreseen].sort());
    const remaining = [...foreseen];
    for (const nar of asked) {
      expect(remaining.indexOf(nar)).toBeLessThan(2);
      remaining.splice(remaining.indexOf(nar), 1);
    }
  });

  it('fetches the NARs of a closure ahead once Nix downloads, each from the server exactly once', async () => {
    const top = await buildMixedClosure();
    const closure = (await nix('nix-store', ['-qR', top])).trim().split('\n');
    await pushToServer([top]);

    // A server older than NAR links: the NARs stream through the proxy, fetched ahead.
    const front = await startFront(stack.server.url, {
      failures: Infinity,
      status: 404,
      failWhen: (_method, url) => url === NAR_LINKS_PATH,
    });
    cleanups.push(front.close);
    const { d } = await daemonFor(front.url, undefined);

    // Only looking paths up fetches no NAR.
    for (const path of closure) {
      const lookup = await fetch(`${d.url}/${StorePath.parse(path).hashPart}.narinfo`);
      expect(lookup.status).toBe(200);
      await lookup.text();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(narGets(front)).toEqual([]);

    const substituted = await substituteIntoFreshStore(top, d.url);
    expect(substituted.split('\n').sort()).toEqual(closure.sort());
    expect(narGets(front)).toHaveLength(closure.length);
    expect(new Set(narGets(front)).size).toBe(closure.length);
    const stats = (await d.control('stats')).json;
    // Nix's order is foreseen: every NAR after the first one comes from the readahead.
    expect(stats.narsReadAhead).toBe(closure.length - 1);
    // The links were asked for once, then never again.
    expect(front.posted.filter((p) => p.url === NAR_LINKS_PATH)).toHaveLength(1);
    expect(stats.narRedirects).toBe(0);
    expect(stats.errors).toEqual([]);
  });
});

describe('NAR readahead limits', () => {
  it('fetches nothing larger than the file limit, and never holds more than the budget', async () => {
    const { token, narinfos } = await seedMixedClosure();
    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const server = new Upstream(front.url, { token: () => token });
    cleanups.push(() => server.close());
    const candidates = narinfos.map((text) => parseCandidate(text)!);
    const largest = Math.max(...candidates.map((c) => c.size));
    const log = createLogger(new Secrets(), { write: () => {} });
    const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

    const tooSmall = new Readahead(server, log, { ...DEFAULT_READAHEAD, maxFileBytes: largest - 1 });
    const fitting = candidates.filter((c) => c.size <= largest - 1).map((c) => c.narPath);
    for (const text of narinfos) tooSmall.noteHit(text);
    expect(await tooSmall.take('/nar/none.nar.zst')).toBeUndefined();
    await settle();
    expect(narGets(front).sort()).toEqual(fitting.sort());
    tooSmall.close();

    // A budget of exactly the next two NARs: those two are fetched; handing one over makes room
    // for as many of the following ones, in order, as then fit.
    front.requests.length = 0;
    const order = substitutionOrder(candidates);
    const budgetBytes = order[1]!.size + order[2]!.size;
    const bounded = new Readahead(server, log, { ...DEFAULT_READAHEAD, budgetBytes });
    for (const text of narinfos) bounded.noteHit(text);
    expect(await bounded.take(order[0]!.narPath)).toBeUndefined(); // the first request starts it
    await settle();
    expect(narGets(front)).toEqual([order[1]!.narPath, order[2]!.narPath]);
    const handed = await bounded.take(order[1]!.narPath);
    expect(handed?.size).toBe(order[1]!.size);
    await settle();
    let held = order[2]!.size;
    let next = 3;
    while (next < order.length && held + order[next]!.size <= budgetBytes) held += order[next++]!.size;
    expect(narGets(front)).toEqual(order.slice(1, next).map((c) => c.narPath));
    bounded.close();
  });

  it('copies NARs onto pages, byte for byte, and reuses the pages of NARs handed over', async () => {
    const [top] = await nixBuild(randomChainExpr(4, 600 * 1024));
    const { token, narinfos } = await seedClosure(top!);
    const server = new Upstream(stack.server.url, { token: () => token });
    cleanups.push(() => server.close());
    const order = substitutionOrder(narinfos.map((text) => parseCandidate(text)!));
    const sizes = order.map((c) => c.size);
    expect(Math.min(...sizes)).toBeGreaterThan(PAGE_BYTES);
    // One NAR at a time: the fetch of the fourth starts once the second was handed over and released.
    const log = createLogger(new Secrets(), { write: () => {} });
    const limits = { ...DEFAULT_READAHEAD, concurrency: 1, budgetBytes: Math.max(...sizes) };
    const readahead = new Readahead(server, log, limits);
    for (const text of narinfos) readahead.noteHit(text);
    expect(await readahead.take(order[0]!.narPath)).toBeUndefined();
    const released = new Set<ArrayBufferLike>();
    let reusedPages = 0;
    for (const candidate of order.slice(1)) {
      const nar = (await readahead.take(candidate.narPath))!;
      const direct = await server.request({ method: 'GET', path: candidate.narPath });
      expect(Buffer.concat(nar.chunks).equals(Buffer.from(await direct.body.arrayBuffer()))).toBe(true);
      reusedPages += nar.chunks.filter((chunk) => released.has(chunk.buffer)).length;
      for (const chunk of nar.chunks) released.add(chunk.buffer);
      nar.release();
    }
    expect(reusedPages).toBeGreaterThan(0);
    readahead.close();
  });
});

describe('pushing', () => {
  it('pushes exactly the new paths of a build, references first, skipping cached, upstream and filtered ones', async () => {
    const tag = salt();
    const cachedExpr = drv('sluice-cached', tag, 'echo cached > $out');
    const upstreamExpr = drv('sluice-upstream', tag, 'echo upstream > $out');
    const filteredExpr = drv('sluice-vendored', tag, 'echo vendored > $out');
    const new1Expr = drv('sluice-new1', tag, '/usr/bin/head -c 100000 /dev/urandom > $out');
    const topExpr = `let c = ${cachedExpr}; u = ${upstreamExpr}; f = ${filteredExpr}; n1 = ${new1Expr};
      n2 = derivation { name = "sluice-new2"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${tag}"; args = [ "-c" "echo \${n1} > $out" ]; };
      in derivation { name = "sluice-top"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${tag}";
        args = [ "-c" "echo \${c} \${u} \${f} \${n2} > $out" ]; }`;
    const [top] = await nixBuild(topExpr);
    const closure = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
    const byName = (name: string) => closure.find((p) => p.endsWith(`-${name}`))!;
    const [cached, upstream, filtered, new1, new2] = [
      'sluice-cached',
      'sluice-upstream',
      'sluice-vendored',
      'sluice-new1',
      'sluice-new2',
    ].map(byName);
    await pushToServer([cached!]);
    const upstreamCache = await startStaticCache([StorePath.parse(upstream!).hashPart]);
    cleanups.push(upstreamCache.close);

    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const { d, token } = await daemonFor(front.url, {
      filter: '-sluice-vendored$',
      upstreamCaches: [upstreamCache.url],
      concurrency: 2,
    });
    const drvPath = (await nix('nix-store', ['--query', '--deriver', top!])).trim();
    // What Nix 2.8's post-build hook reports: the derivation, OUT_PATHS empty.
    expect(await d.control('built', { drvPath, outPaths: [] })).toMatchObject({ status: 202 });
    const stats = (await d.control('drain', { deadlineSeconds: 60, paths: [drvPath] })).json;

    expect(stats.failed).toEqual([]);
    expect(stats.pushed.paths).toBe(3);
    expect(stats.skipped).toEqual({ alreadyCached: 1, upstream: 1, filtered: 1 });
    expect(stats.queued).toBe(0);
    expect(stats.write).toBe('acme/app');
    for (const path of [top!, new1!, new2!, cached!]) expect(await narinfoStatus(path, token)).toBe(200);
    for (const path of [upstream!, filtered!]) expect(await narinfoStatus(path, token)).toBe(404);
    // References before referrers: each narinfo goes up only after those of its references.
    const narinfoPut = (path: string) =>
      front.requests.indexOf(`PUT /${StorePath.parse(path).hashPart}.narinfo`);
    expect(narinfoPut(new1!)).toBeGreaterThanOrEqual(0);
    expect(narinfoPut(new1!)).toBeLessThan(narinfoPut(new2!));
    expect(narinfoPut(new2!)).toBeLessThan(narinfoPut(top!));
    expect(front.requests.filter((r) => r.startsWith('PUT /_api/v1/nar/'))).toHaveLength(3);
    // "Already cached?" was one batch lookup naming every candidate, not one HEAD per path.
    const candidates = [cached!, upstream!, new1!, new2!, top!].map((p) => StorePath.parse(p).hashPart);
    const batches = front.posted.filter((p) => p.url === '/_api/v1/narinfos');
    expect(batches).toHaveLength(1);
    expect((JSON.parse(batches[0]!.body) as { hashParts: string[] }).hashParts.sort()).toEqual(
      candidates.sort(),
    );
    expect(front.requests.filter((r) => r.startsWith('HEAD /'))).toEqual([]);
    // The upstream cache was asked only about paths the server lacked, and without credentials.
    expect(upstreamCache.requests.every((r) => r.startsWith('HEAD /'))).toBe(true);
    expect(upstreamCache.requests.some((r) => r.includes(StorePath.parse(cached!).hashPart))).toBe(false);

    // What was pushed is a working cache: new2 and its reference substitute into an empty store.
    const substituted = await substituteIntoFreshStore(new2!, d.url);
    expect(substituted.split('\n').sort()).toEqual([new1!, new2!].sort());

    // Reported again: nothing new to do.
    const again = (await d.control('drain', { deadlineSeconds: 10, paths: [top!] })).json;
    expect(again.pushed.paths).toBe(3);
    expect(d.logText()).not.toContain(token);
  });

  it('asks about more candidates than one batch lookup may name in several, each candidate once', async () => {
    const count = NARINFO_BATCH_LIMIT + 100;
    const paths = await addTinyPaths(count, 'sluice-many');
    const hashPart = (path: string) => StorePath.parse(path).hashPart;
    // Every tenth already on the server, so that each batch has some: the skips add up over batches.
    const cached = paths.filter((_, i) => i % 10 === 0);
    const cachedHashParts = new Set(cached.map(hashPart));
    await pushToServer(cached);

    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const { d, token } = await daemonFor(front.url, {});
    const stats = (await d.control('drain', { deadlineSeconds: 60, paths })).json;

    expect(stats.failed).toEqual([]);
    expect(stats.queued).toBe(0);
    expect(stats.pushed.paths).toBe(count - cached.length);
    expect(stats.skipped).toEqual({ alreadyCached: cached.length, upstream: 0, filtered: 0 });
    const batches = front.posted
      .filter((p) => p.url === '/_api/v1/narinfos')
      .map((p) => (JSON.parse(p.body) as { hashParts: string[] }).hashParts);
    expect(batches).toHaveLength(Math.ceil(count / NARINFO_BATCH_LIMIT));
    for (const batch of batches) {
      expect(batch.length).toBeLessThanOrEqual(NARINFO_BATCH_LIMIT);
      expect(batch.some((h) => cachedHashParts.has(h))).toBe(true);
    }
    expect(batches.flat().sort()).toEqual(paths.map(hashPart).sort());
    expect(front.requests.filter((r) => r.startsWith('HEAD /'))).toEqual([]);
    // Tiny paths go up many to a request; the few that went alone took a NAR and a narinfo PUT each.
    const pushedAs = uploadsSeen(front);
    expect(pushedAs.batched + pushedAs.alone).toBe(count - cached.length);
    expect(pushedAs.batches).toBeLessThan((count - cached.length) / 10);
    expect(pushedAs.narinfoPuts).toBe(pushedAs.alone);
    const missing: string[] = [];
    for (let i = 0; i < paths.length; i += 50) {
      const group = paths.slice(i, i + 50);
      const statuses = await Promise.all(group.map((path) => narinfoStatus(path, token)));
      missing.push(...group.filter((_, j) => statuses[j] !== 200));
    }
    expect(missing).toEqual([]);

    // A second push of them all (another runner, say): the same batches find every path, nothing goes up.
    front.requests.length = 0;
    const { d: second } = await daemonFor(front.url, {});
    const again = (await second.control('drain', { deadlineSeconds: 60, paths })).json;
    expect(again.pushed.paths).toBe(0);
    expect(again.skipped).toEqual({ alreadyCached: count, upstream: 0, filtered: 0 });
    const checks = front.requests.filter(
      (r) => !r.startsWith('GET /_api/v1/narinfo-set') && r !== `GET ${RECENT_NARINFOS_PATH}`,
    );
    expect(checks).toEqual(batches.map(() => 'POST /_api/v1/narinfos'));
  });

  it('pushes small paths many to a request, references first; a refused batch goes up path by path', async () => {
    const chainOf = async (count: number) => {
      const [top] = await nixBuild(randomChainExpr(count, 2000));
      return (await nix('nix-store', ['-qR', top!])).trim().split('\n');
    };
    const paths = await chainOf(12);
    const front = await startFront(stack.server.url);
    cleanups.push(front.close);
    const { d, token } = await daemonFor(front.url, { concurrency: 2 });
    const stats = (await d.control('drain', { deadlineSeconds: 60, paths })).json;
    expect(stats.failed).toEqual([]);
    expect(stats.pushed.paths).toBe(12);
    const seen = uploadsSeen(front);
    expect(seen.batches).toBeGreaterThan(0);
    expect(seen.batched + seen.alone).toBe(12);
    for (const path of paths) expect(await narinfoStatus(path, token)).toBe(200);
    const top = paths.find((p) => p.endsWith('-sluice-test-12'))!;
    expect((await substituteIntoFreshStore(top, d.url)).split('\n').sort()).toEqual([...paths].sort());

    /** A daemon behind a front that answers every batch `status`, and what it did with `chain`. */
    const refusingBatches = async (status: number, chain: string[]) => {
      const front = await startFront(stack.server.url, {
        failures: 1000,
        status,
        failWhen: (method, url) => method === 'POST' && url === PATH_BATCH_PATH,
      });
      cleanups.push(front.close);
      const { d: daemon } = await daemonFor(front.url, { concurrency: 2 });
      const stats = (await daemon.control('drain', { deadlineSeconds: 60, paths: chain })).json;
      return { front, daemon, stats };
    };

    // Every batch refused (a bad path in it, say): its paths go up one by one, all of them.
    const more = await chainOf(6);
    const { front: refusing, daemon: second, stats: again } = await refusingBatches(400, more);
    expect(again.failed).toEqual([]);
    expect(again.pushed.paths).toBe(6);
    const refused = uploadsSeen(refusing);
    expect(refusing.failed).toBeGreaterThan(0);
    expect([refused.alone, refused.narinfoPuts]).toEqual([6, 6]);
    expect(second.logText()).toContain('batch push failed: pushing its paths one by one');
    for (const path of more) expect(await narinfoStatus(path, token)).toBe(200);

    // A server from before the route (404): asked once, then every path goes on its own.
    const { front: older, stats: pushed } = await refusingBatches(404, await chainOf(6));
    expect([pushed.failed, pushed.pushed.paths, older.failed]).toEqual([[], 6, 1]);
    expect(uploadsSeen(older).alone).toBe(6);
  });

  it('pushes the valid paths of a drain list and reports the ones no longer in the store', async () => {
    const [path] = await nixBuild(drv('sluice-valid', salt(), 'echo valid > $out'));
    const gone = `/nix/store/${'0'.repeat(32)}-sluice-garbage-collected`;
    const { d, token } = await daemonFor(stack.server.url, {});
    const stats = (await d.control('drain', { deadlineSeconds: 60, paths: [gone, path] })).json;
    expect(stats.pushed.paths).toBe(1);
    expect(stats.failed).toEqual([{ path: gone, error: expect.stringMatching(/not a valid store path/) }]);
    expect(await narinfoStatus(path!, token)).toBe(200);
  });

  it('asks a server without the batch route one HEAD per path whether it is cached', async () => {
    const tag = salt();
    const [cached, fresh] = await nixBuild(
      `[ (${drv('sluice-head-cached', tag, 'echo cached > $out')}) (${drv('sluice-head-new', tag, 'echo new > $out')}) ]`,
    );
    await pushToServer([cached!]);
    const front = await startFront(stack.server.url, {
      failures: 1000,
      status: 405,
      failWhen: (method, url) => method === 'POST' && url === '/_api/v1/narinfos',
    });
    cleanups.push(front.close);
    const { d, token } = await daemonFor(front.url, {});
    const stats = (await d.control('drain', { deadlineSeconds: 60, paths: [cached!, fresh!] })).json;
    expect(stats.failed).toEqual([]);
    expect(stats.pushed.paths).toBe(1);
    expect(stats.skipped).toMatchObject({ alreadyCached: 1 });
    expect(front.requests.filter((r) => r.startsWith('HEAD /')).sort()).toEqual(
      [cached!, fresh!].map((p) => `HEAD /${StorePath.parse(p).hashPart}.narinfo?scope=write`).sort(),
    );
    expect(await narinfoStatus(fresh!, token)).toBe(200);
    // Found out once: the next push goes straight to HEADs.
    const [later] = await nixBuild(drv('sluice-head-later', tag, 'echo later > $out'));
    await d.control('drain', { deadlineSeconds: 60, paths: [later!] });
    expect(front.failed).toBe(1);
  });

  it('retries uploads answered 429 with Retry-After, then succeeds', async () => {
    const [path] = await nixBuild(drv('sluice-retry', salt(), 'echo retry > $out'));
    const front = await startFront(stack.server.url, {
      failures: 2,
      status: 429,
      retryAfter: '1',
      failWhen: (method) => method === 'PUT',
    });
    cleanups.push(front.close);
    // An unreachable upstream cache (an offline runner) serves nothing: the path is pushed.
    const { d, token } = await daemonFor(front.url, { upstreamCaches: [await refusedUrl()] });
    const stats = (await d.control('drain', { deadlineSeconds: 60, paths: [path] })).json;
    expect(stats.failed).toEqual([]);
    expect(stats.pushed.paths).toBe(1);
    expect(stats.skipped.upstream).toBe(0);
    expect(front.failed).toBe(2);
    expect(d.logText()).toContain('upstream cache unreachable');
    expect(await narinfoStatus(path!, token)).toBe(200);
  });

  it('records a path whose upload keeps failing, and never shows its referrers', async () => {
    const tag = salt();
    const [top] = await nixBuild(
      `let a = ${drv('sluice-fails', tag, 'echo a > $out')}; in derivation { name = "sluice-referrer"; system = builtins.currentSystem; builder = "/bin/sh"; salt = "${tag}"; args = [ "-c" "echo \${a} > $out" ]; }`,
    );
    const failing = (await nix('nix-store', ['-qR', top!]))
      .trim()
      .split('\n')
      .find((p) => p.endsWith('-sluice-fails'))!;
    const failingNarInfo = `/${StorePath.parse(failing).hashPart}.narinfo`;
    const front = await startFront(stack.server.url, {
      failures: 1000,
      status: 500,
      // Batches refused too, so that both paths go up on their own and the narinfo PUT fails.
      failWhen: (method, url) =>
        (method === 'PUT' && url === failingNarInfo) || (method === 'POST' && url === PATH_BATCH_PATH),
    });
    cleanups.push(front.close);
    const { d, token } = await daemonFor(front.url, {});
    const stats = (await d.control('drain', { deadlineSeconds: 60, paths: [top] })).json;
    expect(stats.pushed.paths).toBe(0);
    expect(stats.failed).toHaveLength(2);
    expect(stats.failed.find((f) => f.path === failing)?.error).toMatch(/HTTP 500/);
    expect(stats.failed.find((f) => f.path === top)?.error).toMatch(/its reference .*sluice-fails failed/);
    // The failing narinfo was tried 1 + 5 times; the referrer's narinfo never went up.
    expect(front.requests.filter((r) => r === `PUT ${failingNarInfo}`)).toHaveLength(6);
    expect(await narinfoStatus(top!, token)).toBe(404);
  }, 120_000);
});

describe('token refresh', () => {
  let shortStack: Stack;
  const clock = new ManualClock();
  beforeAll(async () => {
    shortStack = await startStack('token_ttl: 3s', clock.now);
  });
  afterAll(async () => {
    await shortStack.close();
  });

  it('pushes after the first cache token expired, with a token got from a new ID token', async () => {
    const grant = await shortStack.cacheToken();
    const d = await startTestDaemon(
      {
        server: shortStack.server.url,
        token: grant.token,
        tokenExpiresAt: grant.expiresAt,
        idTokenRequest: {
          url: shortStack.server.issuer.runner.url,
          token: shortStack.server.issuer.runner.token,
        },
        push: { enabled: true, upstreamCaches: [] },
      },
      undefined,
      clock,
    );
    cleanups.push(() => d.close());
    clock.advance(4_500);
    expect(clock.now()).toBeGreaterThan(Date.parse(grant.expiresAt));
    const [path] = await nixBuild(drv('sluice-late', salt(), 'echo late > $out'));
    const stats = (await d.control('drain', { deadlineSeconds: 60, paths: [path] })).json;
    expect(stats.failed).toEqual([]);
    expect(stats.pushed.paths).toBe(1);
    expect(shortStack.server.issuer.runner.audiences).toContain('sluice');
    const log = d.logText();
    expect(log).toContain('cache token refreshed');
    expect(log).not.toContain(grant.token);
    expect(log).not.toContain(shortStack.server.issuer.runner.token);
  });
});
