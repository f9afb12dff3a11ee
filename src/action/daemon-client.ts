/**
 * Starting, talking to and stopping the proxy daemon (dist/proxy/index.js), to the contract in
 * docs/architecture.md: a 0600 config file as argv (the daemon deletes it once read),
 * `<stateDir>/ready.json` once listening, `/_sluice/*` control endpoints on loopback that need the
 * job's control secret.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { controlPath, ControlRoute } from '../contracts/control-api.js';
import { DAEMON_NODE_ARGS, daemonEnv } from '../contracts/daemon-process.js';
import { urlHost } from '../contracts/listen.js';
import type { ProxyAuth } from '../contracts/proxy-auth.js';
import { readReadyFile } from '../contracts/ready-file.js';

export type { DaemonStats } from '../contracts/control-api.js';

/** The per-job credentials of the proxy (src/contracts/proxy-auth.ts). */
export type JobSecrets = ProxyAuth;

export function newJobSecrets(): JobSecrets {
  return {
    cachePrefix: randomBytes(32).toString('base64url'),
    controlSecret: randomBytes(32).toString('base64url'),
  };
}

/** The control secret's file (0600): the post-build hook and the post step read it. */
export function writeControlSecret(stateDir: string, secret: string): string {
  const file = join(stateDir, 'control.secret');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return file;
}

export function readControlSecret(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Deletes files holding the job's secrets; those already gone are fine. */
export function removeFiles(files: string[]): void {
  for (const file of files) rmSync(file, { force: true });
}

export interface RunningDaemon {
  pid: number;
  /** When the kernel started it (`processStartTime`): the pid alone may name another process by the post step. */
  startTime?: string;
  url: string;
  logFile: string;
}

export class DaemonStartError extends Error {}

const READY_TIMEOUT_MS = 20_000;

/** Spawns the daemon detached, its output in a log file (never the step's pipes), and waits until it is ready. */
export async function startDaemon(
  bundle: string,
  configFile: string,
  stateDir: string,
  host: string,
  controlSecret: string,
): Promise<RunningDaemon> {
  const logFile = join(stateDir, 'daemon.log');
  const logFd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...DAEMON_NODE_ARGS, bundle, configFile], {
    env: daemonEnv(process.env),
    detached: true,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = signal ? `killed by ${signal}` : `exited with code ${code}`));
  child.on('error', (error) => (exited = `could not start: ${error.message}`));
  child.unref();
  const pid = child.pid;
  if (pid !== undefined) writeFileSync(join(stateDir, 'daemon.pid'), `${pid}\n`);

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) throw new DaemonStartError(`the proxy daemon ${exited}.\n${tail(logFile)}`);
    const ready = readReadyFile(stateDir);
    if (ready) {
      const url = `http://${urlHost(host)}:${ready.port}`;
      if (await healthy(url, controlSecret)) {
        const startTime = processStartTime(ready.pid);
        return { pid: ready.pid, ...(startTime ? { startTime } : {}), url, logFile };
      }
    }
    await sleep(100);
  }
  if (pid !== undefined) killQuietly(pid, 'SIGKILL');
  throw new DaemonStartError(
    `the proxy daemon was not ready within ${READY_TIMEOUT_MS / 1000} s.\n${tail(logFile)}`,
  );
}

async function healthy(url: string, controlSecret: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}${controlPath(ControlRoute.Health)}`, {
      headers: { authorization: `Bearer ${controlSecret}` },
      signal: AbortSignal.timeout(2_000),
    });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** The last lines of the daemon's log, to say why it failed. */
export function tail(logFile: string, lines = 20): string {
  try {
    const text = readFileSync(logFile, 'utf8').trimEnd();
    return text === '' ? '(the daemon log is empty)' : text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no daemon log)';
  }
}

export async function control<T>(
  url: string,
  controlSecret: string,
  route: ControlRoute,
  body: unknown,
  timeoutMs: number,
): Promise<T> {
  const authorization = `Bearer ${controlSecret}`;
  const path = controlPath(route);
  const response = await fetch(`${url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? { authorization } : { authorization, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path} answered ${response.status}: ${text.trim().slice(0, 300)}`);
  return (text ? JSON.parse(text) : {}) as T;
}

/**
 * Fields 3 onwards of `/proc/<pid>/stat` (state first, start time at index 19), read after the
 * command's closing parenthesis; undefined where there is no /proc (macOS) or no such process.
 */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The kernel's start time of `pid` (clock ticks after boot, field 22): with the pid it names one process. */
export function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.[19];
}

/**
 * True while the process exists and is not a zombie (a reaped-late child counts as gone). With
 * `startTime`, a process that has the pid but started at another time is not it: a daemon that
 * died during the job may have left its pid to another of the runner's processes.
 */
export function isAlive(pid: number, startTime?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const fields = procStat(pid);
  if (!fields) return true;
  return fields[0] !== 'Z' && (startTime === undefined || fields[19] === startTime);
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

async function waitForExit(pid: number, ms: number, startTime?: string): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid, startTime)) return true;
    await sleep(50);
  }
  return !isAlive(pid, startTime);
}

/**
 * Makes sure the daemon is gone: give it `graceMs` to exit after a shutdown request, then SIGTERM,
 * then SIGKILL. Returns how it ended, for the log.
 */
export async function ensureStopped(
  daemon: Pick<RunningDaemon, 'pid' | 'startTime'>,
  graceMs = 5_000,
): Promise<'exited' | 'terminated' | 'killed' | 'survived'> {
  const { pid, startTime } = daemon;
  // Each signal only after checking the pid is still the daemon's.
  if (await waitForExit(pid, graceMs, startTime)) return 'exited';
  killQuietly(pid, 'SIGTERM');
  if (await waitForExit(pid, 3_000, startTime)) return 'terminated';
  killQuietly(pid, 'SIGKILL');
  return (await waitForExit(pid, 2_000, startTime)) ? 'killed' : 'survived';
}
