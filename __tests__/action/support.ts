/** Pieces the Action's end-to-end tests share: a static upstream cache, a fault-injecting TCP relay, store helpers. */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from '../support/runner.js';
import type { TestServer } from '../support/server.js';

export interface StaticUpstream {
  url: string;
  /** Narinfo requests seen, by path (e.g. `/abc….narinfo`). */
  requests: string[];
  close(): Promise<void>;
}

/** A stand-in for cache.nixos.org that serves the narinfos of the given store paths and nothing else. */
export async function startStaticUpstream(storePaths: string[]): Promise<StaticUpstream> {
  const narinfos = new Map(
    storePaths.map((path) => {
      const hash = path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
      return [
        `/${hash}.narinfo`,
        [
          `StorePath: ${path}`,
          `URL: nar/${hash}.nar`,
          'Compression: none',
          `NarHash: sha256:${'0'.repeat(52)}`,
          'NarSize: 1',
          'References: ',
          '',
        ].join('\n'),
      ];
    }),
  );
  const requests: string[] = [];
  const server: Server = createHttpServer((req, res) => {
    const path = req.url ?? '/';
    requests.push(path);
    if (path === '/nix-cache-info') {
      res
        .writeHead(200, { 'content-type': 'text/x-nix-cache-info' })
        .end('StoreDir: /nix/store\nPriority: 40\n');
      return;
    }
    const narinfo = narinfos.get(path);
    if (!narinfo) res.writeHead(404).end();
    else
      res
        .writeHead(200, { 'content-type': 'text/x-nix-narinfo' })
        .end(req.method === 'HEAD' ? undefined : narinfo);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface Relay {
  url: string;
  /** New connections are accepted and then left hanging (a server that stopped answering). */
  hang(on: boolean): void;
  close(): Promise<void>;
}

/** A TCP relay in front of a real server, to make it hang mid-job like a stuck network. */
export async function startRelay(target: string): Promise<Relay> {
  const { hostname, port } = new URL(target);
  let hanging = false;
  const sockets = new Set<Socket>();
  const server = createTcpServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (hanging) return;
    const upstream = connect(Number(port), hostname);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    hang(on) {
      hanging = on;
      // Connections kept alive from before would still work: cut them so every request is new.
      if (on) for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A derivation with a salt, so every run makes fresh store paths; `deps` become references. */
export function derivationExpr(name: string, tag: string, deps: string[] = []): string {
  return `derivation {
    name = "${name}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    salt = "${tag}";
    args = [ "-c" "echo ${tag} ${deps.map((d) => `\${${d}}`).join(' ')} > $out" ];
  }`;
}

/** The output paths an expression evaluates to, without building them (instantiating is enough). */
export async function outPathsOf(job: Job, expression: string): Promise<string[]> {
  const drvs = (await job.run('nix-instantiate', ['--expr', expression])).trim().split('\n');
  const outs = await job.run('nix-store', ['--query', '--outputs', ...drvs]);
  return outs.trim().split('\n');
}

/** Removes store paths this test made (and nothing else), so a later job starts without them. */
export async function deletePaths(job: Job, paths: string[]): Promise<void> {
  await job.run('nix-store', ['--delete', ...paths]);
}

export function hashPart(storePath: string): string {
  return storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
}

/**
 * Warnings, minus those only about store paths of other tests: the store is shared with tests
 * running at the same time, and post's store diff sees their paths come and go.
 */
export function warningsAbout(warnings: string[], ours: string[]): string[] {
  return warnings.filter((warning) => {
    const mentioned = warning.match(/\/nix\/store\/[0-9a-z]{32}-[^\s:)]+/g) ?? [];
    return mentioned.length === 0 || mentioned.some((path) => ours.includes(path));
  });
}

/** Whether the server holds a narinfo for `storePath` (asked with a CI cache token of the default job). */
export async function onServer(server: TestServer, storePath: string): Promise<boolean> {
  const response = await fetch(`${server.url}/${hashPart(storePath)}.narinfo`, {
    method: 'HEAD',
    headers: { authorization: `Bearer ${await server.ciToken()}` },
  });
  return response.status === 200;
}

/** The job's proxy address and control secret, as the post step reads them. */
export function proxyControl(job: Job): { url: string; secret: string } {
  const state = job.savedState() as { daemon: { url: string }; controlSecretFile: string };
  return { url: state.daemon.url, secret: readFileSync(state.controlSecretFile, 'utf8').trim() };
}

/** Waits (up to 30 s) until the server has `storePaths`, pushed by the job's daemon while it runs. */
export async function pushedInBackground(
  server: TestServer,
  job: Job,
  storePaths: string[],
): Promise<boolean> {
  const { url, secret } = proxyControl(job);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const present = await Promise.all(storePaths.map((path) => onServer(server, path)));
    if (present.every(Boolean)) return true;
    const stats = (await (
      await fetch(`${url}/_sluice/stats`, { headers: { authorization: `Bearer ${secret}` } })
    ).json()) as { failed: unknown[] };
    if (stats.failed.length > 0) return false;
    await sleep(200);
  }
  return false;
}
