/**
 * End to end, the awkward jobs: no OIDC token, the Action used twice, a job that outlives its cache
 * token, a server that hangs or goes away mid-job. Real Nix, real server, real daemon.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from '../../src/action/daemon-client.js';
import { salt } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { derivationExpr, onServer, startRelay, warningsAbout } from './support.js';
import { ManualClock } from '../support/clock.js';

let dist: string;
let server: TestServer;

beforeAll(async () => {
  dist = buildActionBundles();
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

function daemonPid(job: Job, use = 'sluice'): number | undefined {
  return (job.savedState(use) as { daemon?: { pid: number } } | undefined)?.daemon?.pid;
}

const inputs = (url: string, extra: Record<string, string> = {}) => ({
  server: url,
  listen: '127.0.0.1:0',
  'upstream-caches': '',
  ...extra,
});

describe('jobs that cannot or may not use the cache fully', () => {
  it.each([
    ['no ID token at all (a fork PR)', false],
    ['the ID-token endpoint refuses', true],
  ])('%s: green, a notice naming the permission, nothing pushed', async (_case, refuse) => {
    if (refuse) server.issuer.runner.refuse('Can not issue ID tokens for pull requests from forks');
    try {
      const job = new Job({
        dist,
        inputs: inputs(server.url),
        ...(refuse ? { idTokenRequest: server.issuer.runner } : {}),
      });
      const main = await job.runMain();
      expect(main.exitCode).toBe(0);
      expect(main.notices.join('\n')).toContain('`permissions: id-token: write`');
      expect(daemonPid(job)).toBeUndefined();
      const [built] = await job.nixBuild(derivationExpr('sluice-e2e-fork', salt()));
      const post = await job.runPost();
      expect(post.exitCode).toBe(0);
      expect(post.outputs['pushed-paths']).toBeUndefined();
      expect(await onServer(server, built!)).toBe(false);
    } finally {
      server.issuer.runner.refuse(null);
    }
  });
});

describe('a proxy that cannot start', () => {
  it('says why (the end of its log) and the job goes on without the cache', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const job = new Job({
        dist,
        inputs: inputs(server.url, { listen: `127.0.0.1:${port}` }),
        idTokenRequest: server.issuer.runner,
      });
      const main = await job.runMain();
      expect(main.exitCode).toBe(0);
      expect(main.warnings.join('\n')).toMatch(/proxy did not start[\s\S]*EADDRINUSE/);
      expect(job.exported).toEqual({});
      const post = await job.runPost();
      expect(post.exitCode).toBe(0);
      expect(post.summary).toContain('proxy did not start');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

describe('a proxy that dies mid-job', () => {
  it('post says so, stays green and leaves nix.conf clean', async () => {
    const job = new Job({ dist, inputs: inputs(server.url), idTokenRequest: server.issuer.runner });
    expect((await job.runMain()).exitCode).toBe(0);
    const pid = daemonPid(job)!;
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
    // Nix falls back to building when its substituter is gone.
    await job.nixBuild(derivationExpr('sluice-e2e-died', salt()));
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings.join('\n')).toContain(`proxy (pid ${pid}) died during the job`);
    expect(post.summary).toContain('died during the job');
    expect(readFileSync(`${job.machine.env.XDG_CONFIG_HOME}/nix/nix.conf`, 'utf8')).not.toContain('sluice');
  }, 120_000);
  it("never signals another process that has the dead proxy's pid by the post step", async () => {
    const job = new Job({ dist, inputs: inputs(server.url), idTokenRequest: server.issuer.runner });
    expect((await job.runMain()).exitCode).toBe(0);
    const pid = daemonPid(job)!;
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
    // The kernel may give the pid to another of the runner user's processes: here, made so.
    const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const state = job.states.get('sluice')!;
      const saved = JSON.parse(state.SLUICE_STATE!) as { daemon: { pid: number; startTime?: string } };
      expect(saved.daemon.startTime).toMatch(/^\d+$/);
      saved.daemon.pid = bystander.pid!;
      state.SLUICE_STATE = JSON.stringify(saved);
      const post = await job.runPost();
      expect(post.exitCode).toBe(0);
      expect(post.warnings.join('\n')).toContain(`proxy (pid ${bystander.pid}) died during the job`);
      expect(bystander.exitCode).toBeNull();
      expect(bystander.signalCode).toBeNull();
      expect(isAlive(bystander.pid!)).toBe(true);
    } finally {
      bystander.kill('SIGKILL');
    }
  }, 120_000);
});

describe('the Action used twice in one job', () => {
  it('the second use reuses the first one’s proxy; both post steps end cleanly', async () => {
    const job = new Job({ dist, inputs: inputs(server.url), idTokenRequest: server.issuer.runner });
    const first = await job.runMain('first');
    const second = await job.runMain('second');
    expect(second.exitCode).toBe(0);
    expect(second.outputs.substituter).toBe(first.outputs.substituter);
    expect(second.log).toContain('already set up in this job');
    expect(daemonPid(job, 'second')).toBeUndefined();

    const [built] = await job.nixBuild(derivationExpr('sluice-e2e-twice', salt()));
    // Post steps run in reverse order: the second use's post first, and it leaves the proxy alone.
    const secondPost = await job.runPost('second');
    expect(secondPost.exitCode).toBe(0);
    expect(secondPost.summary).toBe('');
    expect(isAlive(daemonPid(job, 'first')!)).toBe(true);
    const firstPost = await job.runPost('first');
    expect(firstPost.exitCode).toBe(0);
    expect(firstPost.outputs['pushed-paths']).not.toBe('0');
    expect(await onServer(server, built!)).toBe(true);
    expect(isAlive(daemonPid(job, 'first')!)).toBe(false);
  }, 180_000);
});

describe('a job longer than its cache token', () => {
  let shortLived: TestServer;
  const clock = new ManualClock();
  beforeAll(async () => {
    shortLived = await startTestServer({ yaml: 'token_ttl: 4s\n', now: clock.now });
  });
  afterAll(async () => {
    await shortLived?.close();
  });

  it('still pushes at the end: the proxy got a fresh token', async () => {
    const job = new Job({ dist, inputs: inputs(shortLived.url), idTokenRequest: shortLived.issuer.runner });
    expect((await job.runMain()).exitCode).toBe(0);
    const requestsAtStart = shortLived.issuer.runner.audiences.length;
    clock.advance(6_000); // the first token has expired, as far as the server can tell
    const [built] = await job.nixBuild(derivationExpr('sluice-e2e-long', salt()));
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(warningsAbout(post.warnings, [built!])).toEqual([]);
    expect(await onServer(shortLived, built!)).toBe(true);
    expect(shortLived.issuer.runner.audiences.length).toBeGreaterThan(requestsAtStart);
  }, 180_000);
});

describe('a server that fails mid-job', () => {
  it('hanging: post gives up at drain-timeout, stops the daemon, stays green and says so', async () => {
    const relay = await startRelay(server.url);
    try {
      const drainTimeout = 3;
      const job = new Job({
        dist,
        inputs: inputs(relay.url, { 'drain-timeout': String(drainTimeout) }),
        idTokenRequest: server.issuer.runner,
      });
      expect((await job.runMain()).exitCode).toBe(0);
      relay.hang(true);
      await job.nixBuild(derivationExpr('sluice-e2e-hang', salt()));
      const post = await job.runPost();
      expect(post.exitCode).toBe(0);
      expect(post.warnings.length).toBeGreaterThan(0);
      expect(post.summary).toContain('What went wrong');
      // drain-timeout, the post step's grace for the daemon's answer, and the stop sequence.
      expect(post.durationMs).toBeLessThan((drainTimeout + 10 + 10) * 1000);
      expect(isAlive(daemonPid(job)!)).toBe(false);
    } finally {
      await relay.close();
    }
  }, 120_000);

  it('gone, with `strict: true`: the post step fails the job', async () => {
    const relay = await startRelay(server.url);
    const job = new Job({
      dist,
      inputs: inputs(relay.url, { strict: 'true', 'drain-timeout': '10' }),
      idTokenRequest: server.issuer.runner,
    });
    expect((await job.runMain()).exitCode).toBe(0);
    await relay.close();
    await job.nixBuild(derivationExpr('sluice-e2e-gone', salt()));
    const post = await job.runPost();
    expect(post.exitCode).toBe(1);
    expect(post.errors.length).toBeGreaterThan(0);
    expect(isAlive(daemonPid(job)!)).toBe(false);
  }, 120_000);
});
