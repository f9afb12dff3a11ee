/**
 * How GitHub cache mode reads a restored pack, end to end (bundled steps, real Nix, the cache
 * service stand-in, the real Azurite): read out of the download as it lands, with @actions/cache's
 * tar then extracting the index alone (the NARs are not written a second time); and read from
 * what tar extracted when reading the download failed before the index.
 *
 * Downloads pass through a relay that paces Azurite's answers like a network: the pack's index is
 * read long before the download ends, as it is on a runner (a download of a few KiB from a local
 * Azurite would often be over before the daemon looked at it).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { salt } from '../support/nix.js';
import { azuritePort, startAzurite, type Azurite } from '../support/azurite.js';
import { startCacheService, type CacheService } from '../support/cache-service.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { deletePaths } from './support.js';

const AZURITE_PORT = azuritePort(2);
const PREFIX = 'sluice-ghr';
/** 24 MiB at 6 MiB/s: a 4 s download, time for a daemon on a busy CI machine to read the index. */
const BIG_BYTES = 24 * 1024 * 1024;
const PACE_BYTES_PER_SECOND = 6 * 1024 * 1024;
let dist: string;
let azurite: Azurite;
let paced: Server;
let service: CacheService;

/** A TCP relay that passes `target`'s answers on at `bytesPerSecond` (requests go through at once). */
async function startPacedRelay(target: number, bytesPerSecond: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      upstream.pause();
      client.write(chunk);
      setTimeout(() => upstream.resume(), (chunk.length / bytesPerSecond) * 1000);
    });
    upstream.on('end', () => client.end());
  });
  server.on('close', () => sockets.forEach((socket) => socket.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function job(ref: string, inputs: Record<string, string> = {}): Job {
  const token = service.tokenFor({ ref, readRefs: [] });
  return new Job({
    dist,
    inputs: {
      listen: '127.0.0.1:0',
      'upstream-caches': '',
      // Tests running at the same time add paths to the shared store: packs hold only this file's.
      'push-filter': `^(?!/nix/store/[0-9a-z]{32}-${PREFIX}-)`,
      ...inputs,
    },
    github: { ref, cache: { url: service.url, token } },
  });
}

/** Job 1 on `ref`: adds a big random file and a small one to the store, saves them as one pack. */
async function savePack(ref: string): Promise<{ paths: string[]; sha256: string; key: string }> {
  const j = job(ref);
  expect((await j.runMain()).exitCode).toBe(0);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ghr-'));
  try {
    const tag = salt();
    const big = randomBytes(BIG_BYTES);
    writeFileSync(join(dir, `${PREFIX}-big-${tag}`), big);
    writeFileSync(join(dir, `${PREFIX}-small-${tag}`), `${tag}\n`);
    const paths = (
      await j.run('nix-store', [
        '--add',
        join(dir, `${PREFIX}-big-${tag}`),
        join(dir, `${PREFIX}-small-${tag}`),
      ])
    )
      .trim()
      .split('\n');
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.outputs['pushed-paths']).toBe('2');
    const key = post.outputs['pack-saved-key']!;
    expect(key).not.toBe('');
    await deletePaths(j, paths);
    return { paths, sha256: createHash('sha256').update(big).digest('hex'), key };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Job 2 on `ref`: Nix substitutes `paths` (builds nothing); what the daemon restored, and its log. */
async function restoreJob(ref: string, paths: string[]) {
  const j = job(ref);
  expect((await j.runMain()).exitCode).toBe(0);
  await j.run('nix-store', ['--realise', '--max-jobs', '0', ...paths]);
  const bigCopy = readFileSync(paths[0]!);
  const post = await j.runPost();
  const { stateDir, daemon } = j.savedState() as { stateDir: string; daemon: { logFile: string } };
  const extracted = join(stateDir, 'pack', 'restore', 'sluice-pack');
  await deletePaths(j, paths);
  return {
    post,
    stateDir,
    bigSha256: createHash('sha256').update(bigCopy).digest('hex'),
    extracted: {
      index: existsSync(join(extracted, 'index.json')),
      nars: existsSync(join(extracted, 'nars.zst')),
    },
    daemonLog: readFileSync(daemon.logFile, 'utf8'),
  };
}

/** argv of a live process (NUL-separated in /proc), or undefined once it is gone. */
function argvOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** The daemon's restore process (its child started with `--pack-restore`), waited for up to 10 s. */
async function restoreChildOf(daemonPid: number): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    for (const task of readdirSync(`/proc/${daemonPid}/task`)) {
      const children = readFileSync(`/proc/${daemonPid}/task/${task}/children`, 'utf8').trim();
      for (const pid of children ? children.split(' ').map(Number) : [])
        if (argvOf(pid)?.includes('--pack-restore')) return pid;
    }
    await sleep(50);
  }
  throw new Error(`the daemon (pid ${daemonPid}) started no restore process`);
}

/** Job 2's main step on `ref`, and the pids of its daemon and of the daemon's restore process. */
async function startRestoring(ref: string, inputs: Record<string, string> = {}) {
  const j = job(ref, inputs);
  expect((await j.runMain()).exitCode).toBe(0);
  const { stateDir, daemon } = j.savedState() as {
    stateDir: string;
    daemon: { pid: number; logFile: string };
  };
  return { j, stateDir, daemon, child: await restoreChildOf(daemon.pid) };
}

beforeAll(async () => {
  dist = buildActionBundles();
  azurite = await startAzurite(AZURITE_PORT);
  paced = await startPacedRelay(AZURITE_PORT, PACE_BYTES_PER_SECOND);
  const { port } = paced.address() as { port: number };
  // The signed URLs point at the relay; their signatures do not cover the host.
  service = await startCacheService({
    ...azurite,
    url: azurite.url.replace(`:${AZURITE_PORT}/`, `:${port}/`),
  });
}, 600_000);
afterAll(async () => {
  await service?.close();
  await new Promise((resolve) => paced?.close(resolve));
  await azurite?.close();
});

describe('restoring a pack', () => {
  it('reads the NARs out of the download; tar then extracts the index alone, not the NARs again', async () => {
    const ref = 'refs/heads/streamed';
    const { paths, sha256 } = await savePack(ref);
    const restored = await restoreJob(ref, paths);
    expect(restored.post.exitCode).toBe(0);
    expect(restored.post.warnings).toEqual([]);
    expect(restored.post.outputs['pack-used-paths']).toBe('2');
    expect(restored.bigSha256).toBe(sha256);
    expect(restored.post.summary).toMatch(/index read after [\d.]+ s \(streamed\)/);
    expect(restored.extracted).toEqual({ index: true, nars: false });
  }, 300_000);

  it('reads what tar extracted when reading the download failed before the index', async () => {
    const ref = 'refs/heads/extracted';
    const { paths, sha256, key } = await savePack(ref);
    const entry = service.entries.find((e) => e.key === key)!;
    await service.writeBlob(entry, withSignedChecksum(await service.readBlob(entry)));
    const restored = await restoreJob(ref, paths);
    expect(restored.post.exitCode).toBe(0);
    expect(restored.post.outputs['pack-used-paths']).toBe('2');
    expect(restored.bigSha256).toBe(sha256);
    expect(restored.post.summary).toContain('Pack restored');
    expect(restored.post.summary).not.toContain('(streamed)');
    expect(restored.daemonLog).toContain('a header checksum does not match');
    expect(restored.extracted).toEqual({ index: true, nars: true });
  }, 300_000);
});

describe('a pack whose archive names files outside its directory', () => {
  it('has tar write them inside sluice-pack/ only (absolute, `..`, through a symlink), and still serves the pack', async () => {
    const ref = 'refs/heads/escaping-members';
    const { paths, sha256, key } = await savePack(ref);
    const outside = mkdtempSync(join(tmpdir(), 'sluice-ghr-outside-'));
    const tag = salt();
    try {
      const entry = service.entries.find((e) => e.key === key)!;
      await service.writeBlob(entry, withEscapingMembers(await service.readBlob(entry), outside, tag));
      const restored = await restoreJob(ref, paths);
      expect(readdirSync(outside)).toEqual([]);
      expect(existsSync(join(restored.stateDir, `escaped-dotdot-${tag}`))).toBe(false);
      expect(restored.post.exitCode).toBe(0);
      expect(restored.post.outputs['pack-used-paths']).toBe('2');
      expect(restored.bigSha256).toBe(sha256);
      // What tar did write, it wrote under the pack's own directory.
      const extracted = join(restored.stateDir, 'pack', 'restore', 'sluice-pack');
      expect(readFileSync(join(extracted, `escaped-abs-${tag}`), 'utf8')).toBe('pwned\n');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('the restore process', () => {
  it('downloads in a child of the daemon; killing it fails the restore open, the token not in its argv', async () => {
    const ref = 'refs/heads/child-killed';
    const { paths } = await savePack(ref);
    const { j, daemon, child } = await startRestoring(ref);
    expect(child).not.toBe(daemon.pid);
    const argv = argvOf(child)!;
    // The daemon's own bundle again, with nothing else in argv (the cache token is in its environment).
    expect(argv).toHaveLength(3);
    expect(argv[1]).toMatch(/\/proxy\/index\.js$/);
    expect(argv[2]).toBe('--pack-restore');
    // The download is paced over 4 s: it is still under way.
    process.kill(child, 'SIGKILL');
    await expect(j.run('nix-store', ['--realise', '--max-jobs', '0', ...paths])).rejects.toThrow();
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings.join('\n')).toMatch(
      /could not restore a pack .*the restore process was killed \(SIGKILL\) before it finished/,
    );
    expect(post.summary).toMatch(/Pack restored: failed: the restore process was killed/);
    expect(j.everything).not.toContain(service.tokenFor({ ref, readRefs: [] }));
    const strict = await startRestoring(ref, { strict: 'true' });
    process.kill(strict.child, 'SIGKILL');
    expect((await strict.j.runPost()).exitCode).toBe(1);
  }, 300_000);

  it('ends with the daemon, with its tar, before the download is over', async () => {
    const ref = 'refs/heads/daemon-killed';
    await savePack(ref);
    const { j, stateDir, daemon, child } = await startRestoring(ref);
    process.kill(daemon.pid, 'SIGKILL');
    const killedAt = Date.now();
    while (argvOf(child) !== undefined && Date.now() - killedAt < 2_000) await sleep(20);
    expect(argvOf(child)).toBeUndefined();
    // Long enough for the paced download (4 s) and tar, had the child gone on.
    await sleep(6_000);
    expect(existsSync(join(stateDir, 'pack', 'restore', 'sluice-pack', 'index.json'))).toBe(false);
    const post = await j.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.warnings.join('\n')).toMatch(/died during the job/);
  }, 300_000);
});

/**
 * The archive with its first tar header's checksum written as old tars did, a sum of signed bytes
 * (a UTF-8 user name makes it differ). GNU tar accepts either sum; the daemon's own reader only
 * the standard one, so reading the download fails at the first header, before the index.
 */
function withSignedChecksum(archive: Buffer): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ghr-archive-'));
  try {
    writeFileSync(join(dir, 'in.tzst'), archive);
    execFileSync('zstd', ['-q', '-d', join(dir, 'in.tzst'), '-o', join(dir, 'in.tar')]);
    const tar = readFileSync(join(dir, 'in.tar'));
    const header = tar.subarray(0, 512);
    header.fill(0, 265, 297);
    header.write('r\u00fcnner', 265, 'utf8');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (header[i]! << 24) >> 24;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    writeFileSync(join(dir, 'out.tar'), tar);
    execFileSync('zstd', ['-q', join(dir, 'out.tar'), '-o', join(dir, 'out.tzst')]);
    return readFileSync(join(dir, 'out.tzst'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The archive with members appended after the pack's two files, as a hostile writer of the cache
 * scope would add them: a file at an absolute path in `outside`, one at `../../` from the
 * extraction directory, and a symlink to `outside` with a file written through it.
 */
function withEscapingMembers(archive: Buffer, outside: string, tag: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ghr-archive-'));
  try {
    writeFileSync(join(dir, 'in.tzst'), archive);
    execFileSync('zstd', ['-q', '-d', join(dir, 'in.tzst'), '-o', join(dir, 'in.tar')]);
    const work = join(dir, 'work');
    mkdirSync(work);
    writeFileSync(join(work, 'payload'), 'pwned\n');
    symlinkSync(outside, join(work, 'link'));
    const append = (member: string, as: string) =>
      execFileSync('tar', [
        '-rf',
        join(dir, 'in.tar'),
        '-P',
        '-C',
        work,
        `--transform=s|^${member}$|${as}|`,
        member,
      ]);
    append('payload', join(outside, `escaped-abs-${tag}`));
    append('payload', `../../escaped-dotdot-${tag}`);
    append('link', 'sluice-pack/link');
    append('payload', `sluice-pack/link/escaped-link-${tag}`);
    execFileSync('zstd', ['-q', join(dir, 'in.tar'), '-o', join(dir, 'out.tzst')]);
    return readFileSync(join(dir, 'out.tzst'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
