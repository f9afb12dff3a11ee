/**
 * The Sluice side of the scenarios, driven only through public interfaces: the server started by
 * its CLI (`sluice serve --listen --data --config`), cache tokens from the OIDC exchange, the proxy
 * daemon started from its bundle with a config file, and pushes through `POST /_sluice/drain`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import {
  controlPath,
  ControlRoute,
  type DaemonStats,
  type DrainRequest,
} from '../../src/contracts/control-api.js';
import { writeDaemonConfig, type DaemonConfigFile } from '../../src/contracts/daemon-config.js';
import { DAEMON_NODE_ARGS, daemonEnv } from '../../src/contracts/daemon-process.js';
import { readReadyFile } from '../../src/contracts/ready-file.js';
import {
  DEFAULT_AUDIENCE,
  HEALTH_PATH,
  parseTokenExchangeResponse,
  TOKEN_EXCHANGE_PATH,
  type ExchangedToken,
} from '../../src/contracts/server-api.js';
import type { Context } from './context.js';
import { profilingFlags } from './profile.js';
import { cpuSeconds, peakRssMB, startProcess, stopProcess, waitForExit, waitForHttp } from './processes.js';

export const AUDIENCE = DEFAULT_AUDIENCE;

/** The bundles a scenario needs (built by bench/run.js). */
export type SluicePart = 'cli' | 'proxy' | 'main' | 'post' | 'hook';
const SLICE = 'bench/app';
/** The ids in the local issuer's GitHub-shaped claims (githubClaims' defaults, set explicitly here). */
const REPOSITORY_ID = '100001';
const REPOSITORY_OWNER_ID = '5001';

/** An OIDC ID token minted by the local issuer the server trusts (GitHub's stand-in). */
export interface IdTokenSource {
  issuerUrl: string;
  /** The runner's ID-token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL / _TOKEN), for the Action's steps. */
  runnerEndpoint: { url: string; token: string };
  mint(claims: Record<string, string>): Promise<string>;
  close(): Promise<void>;
}

export interface SluiceServer {
  url: string;
  /** Its data directory (the SQLite database is `sluice.db` there). */
  dataDir: string;
  publicKey: string;
  pid: number;
  /** The tail of its log, for error messages. */
  output(): string;
  peakRssMB(): number;
  cpuSeconds(): number;
  close(): Promise<void>;
}

export interface Daemon {
  /** The substituter URL: the daemon's address and the job's secret path. */
  url: string;
  pid: number;
  /** The tail of its log, for error messages. */
  output(): string;
  peakRssMB(): number;
  cpuSeconds(): number;
  stats(): Promise<DaemonStats>;
  /** Waits until the daemon's first fetch of the narinfo set ended (loaded or not); its stats then. */
  /** Waits until the narinfo set and the recent narinfos are fetched (or failed), as a job's are before Nix asks. */
  lookupSetLoaded(timeoutMs?: number): Promise<DaemonStats>;
  /** Pushes `paths` (and their closures) and waits until the queue is empty. */
  drain(paths: string[], deadlineSeconds?: number): Promise<DrainStats>;
  close(): Promise<void>;
}

export type DrainStats = DaemonStats;

/** An error as one short line, for a table cell that says why a side could not be measured. */
/**
 * Extra Node flags for the server or the daemons from the environment (space-separated), for
 * experiments such as `SLUICE_BENCH_SERVER_NODE_ARGS=--trace-gc` (the output lands in the process's log).
 */
function extraNodeArgs(variable: string): string[] {
  return (process.env[variable] ?? '').split(' ').filter(Boolean);
}

export function reason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const line = text.replace(/\s*\n\s*/g, ' / ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** Why the Sluice side cannot run in this tree yet, or undefined when it can. */
export function sluiceUnavailable(context: Context, parts: SluicePart[]): string | undefined {
  for (const part of parts) {
    const why = context.bundles.unavailable[part];
    if (why) return why;
  }
  return undefined;
}

function serverConfigYaml(issuerUrl: string, extraYaml: string): string {
  return `${extraYaml}issuers:
  - name: bench
    issuer: ${issuerUrl}
    audience: ${AUDIENCE}
    allow_insecure_http: true
slices:
  - name: ${SLICE}
    read:
      - { issuer: bench, repository_owner_id: "${REPOSITORY_OWNER_ID}" }
    write:
      - { issuer: bench, repository_id: "${REPOSITORY_ID}", ref: refs/heads/main }
`;
}

/** `extraYaml`: more top-level config keys (e.g. `database:` for PostgreSQL). */
export async function startSluiceServer(
  context: Context,
  issuerUrl: string,
  extraYaml = '',
): Promise<SluiceServer> {
  const dir = context.scratch('server');
  const configFile = join(dir, 'sluice.yml');
  writeFileSync(configFile, serverConfigYaml(issuerUrl, extraYaml));
  const bundle = join(context.bundles.dir, 'cli', 'index.js');
  const child = startProcess(
    process.execPath,
    [
      ...profilingFlags(context.profileDir),
      ...extraNodeArgs('SLUICE_BENCH_SERVER_NODE_ARGS'),
      bundle,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--data',
      join(dir, 'data'),
      '--config',
      configFile,
    ],
    join(dir, 'server.log'),
  );
  context.processLabels.set(child.pid!, 'server');
  // The CLI prints the URL and the public key once it listens.
  const deadline = Date.now() + 20_000;
  let url: string | undefined;
  let publicKey: string | undefined;
  while (Date.now() < deadline && (url === undefined || publicKey === undefined)) {
    if (child.exitCode !== null)
      throw new Error(`sluice serve exited (${child.exitCode}):\n${child.output()}`);
    url = /http:\/\/127\.0\.0\.1:\d+/.exec(child.output())?.[0];
    publicKey = /\b[\w.-]+:[A-Za-z0-9+/]{43}=/.exec(child.output())?.[0];
    await sleep(50);
  }
  if (url === undefined || publicKey === undefined) {
    await stopProcess(child);
    throw new Error(`sluice serve printed no URL and public key:\n${child.output()}`);
  }
  await waitForHttp(`${url}${HEALTH_PATH}`, 10_000, child);
  return {
    url,
    dataDir: join(dir, 'data'),
    publicKey,
    pid: child.pid!,
    output: child.output,
    peakRssMB: () => peakRssMB(child.pid!),
    cpuSeconds: () => cpuSeconds(child.pid!),
    close: () => stopProcess(child),
  };
}

export type CacheToken = ExchangedToken;

/** The token exchange a job's main step does: GitHub-shaped claims of a push to main, one run id per job. */
export async function exchangeToken(server: SluiceServer, ids: IdTokenSource, job = 1): Promise<CacheToken> {
  const idToken = await ids.mint({
    repository_id: REPOSITORY_ID,
    repository_owner_id: REPOSITORY_OWNER_ID,
    ref: 'refs/heads/main',
    run_id: String(job),
  });
  const response = await fetch(`${server.url}${TOKEN_EXCHANGE_PATH}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${idToken}` },
  });
  if (!response.ok) throw new Error(`token exchange answered ${response.status}: ${await response.text()}`);
  return parseTokenExchangeResponse(await response.text());
}

/** A netrc that lets plain Nix read from the server directly (Basic auth, the token as password). */
export function writeNetrc(dir: string, token: string): string {
  const file = join(dir, 'netrc');
  writeFileSync(file, `machine 127.0.0.1\npassword ${token}\n`, { mode: 0o600 });
  return file;
}

/** Starts one job's proxy daemon from its bundle, as the Action's main step does. */
export async function startDaemon(
  context: Context,
  server: SluiceServer,
  token: CacheToken,
  label = 'daemon',
): Promise<Daemon> {
  const stateDir = context.scratch('daemon');
  mkdirSync(stateDir, { recursive: true });
  const auth = {
    cachePrefix: randomBytes(32).toString('base64url'),
    controlSecret: randomBytes(32).toString('base64url'),
  };
  const authorization = `Bearer ${auth.controlSecret}`;
  const config: DaemonConfigFile = {
    auth,
    listen: '127.0.0.1:0',
    server: server.url,
    token: token.token,
    tokenExpiresAt: token.expiresAt,
    audience: AUDIENCE,
    // No upstream caches: the machine is offline and every bench path is new anyway.
    push: { enabled: true, upstreamCaches: [], compression: 'zstd' },
    stateDir,
    read: token.read,
    write: token.write,
  };
  const configFile = await writeDaemonConfig(config);
  const child = startProcess(
    process.execPath,
    [
      ...profilingFlags(context.profileDir),
      ...DAEMON_NODE_ARGS,
      ...extraNodeArgs('SLUICE_BENCH_DAEMON_NODE_ARGS'),
      join(context.bundles.dir, 'proxy', 'index.js'),
      configFile,
    ],
    join(stateDir, 'daemon.log'),
    daemonEnv(process.env),
  );
  context.processLabels.set(child.pid!, label);
  const deadline = Date.now() + 20_000;
  let ready = readReadyFile(stateDir);
  while (!ready) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopProcess(child);
      throw new Error(`proxy daemon not ready (exit ${child.exitCode}):\n${child.output()}`);
    }
    await sleep(25);
    ready = readReadyFile(stateDir);
  }
  const url = `http://127.0.0.1:${ready.port}`;
  const stats = async (): Promise<DaemonStats> => {
    const response = await request(`${url}${controlPath(ControlRoute.Stats)}`, {
      headers: { authorization },
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`stats answered ${response.statusCode}: ${text}`);
    return JSON.parse(text) as DaemonStats;
  };
  await waitForHttp(`${url}${controlPath(ControlRoute.Health)}`, 10_000, child, { authorization });
  return {
    url: `${url}/${auth.cachePrefix}`,
    pid: child.pid!,
    output: child.output,
    peakRssMB: () => peakRssMB(child.pid!),
    cpuSeconds: () => cpuSeconds(child.pid!),
    stats,
    lookupSetLoaded: async (timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const current = await stats();
        const set = current.lookupSet;
        if (set?.state !== 'loading' && set?.recent?.state !== 'loading') return current;
        if (Date.now() > deadline) throw new Error('the daemon did not load its narinfo set in time');
        await sleep(20);
      }
    },
    drain: async (paths, deadlineSeconds = 3600) => {
      // undici's request, not fetch: fetch gives up waiting for headers after 300 s, a big push may take longer.
      const response = await request(`${url}${controlPath(ControlRoute.Drain)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization },
        body: JSON.stringify({ deadlineSeconds, paths } satisfies DrainRequest),
        headersTimeout: (deadlineSeconds + 60) * 1000,
      });
      const text = await response.body.text();
      if (response.statusCode !== 200) throw new Error(`drain answered ${response.statusCode}: ${text}`);
      const stats = JSON.parse(text) as DrainStats;
      if (stats.failed.length > 0 || stats.queued > 0) {
        throw new Error(
          `drain left work undone: ${JSON.stringify({ failed: stats.failed.slice(0, 3), queued: stats.queued })}`,
        );
      }
      return stats;
    },
    close: async () => {
      await fetch(`${url}${controlPath(ControlRoute.Shutdown)}`, {
        method: 'POST',
        headers: { authorization },
      }).catch(() => undefined);
      await waitForExit(child, 5_000);
      await stopProcess(child);
    },
  };
}
