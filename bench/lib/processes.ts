/** Child processes the benchmark starts (nginx, the Sluice server, proxy daemons) and their memory. */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A free loopback port, for programs that cannot listen on port 0 and report the port (nginx). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Polls `url` until it answers 2xx, or fails after `timeoutMs` naming the last error. */
export async function waitForHttp(
  url: string,
  timeoutMs = 15_000,
  child?: ChildProcess,
  headers: Record<string, string> = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null)
      throw new Error(`process exited (${child.exitCode}) before ${url} answered`);
    try {
      const response = await fetch(url, { headers });
      if (response.ok) return;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = String(error);
    }
    await sleep(50);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms: ${last}`);
}

/**
 * Starts a program with its output going to `logFile`, as a deployment would log to a file: a pipe
 * read by the benchmark would make the benchmark process (also the load generator) do the
 * program's log handling. `output()` is the log's tail, for error messages.
 */
export function startProcess(
  command: string,
  args: string[],
  logFile: string,
  env?: NodeJS.ProcessEnv,
): ChildProcess & { output: () => string } {
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { env: env ?? process.env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const output = () => {
    try {
      return readFileSync(logFile, 'utf8').slice(-20_000);
    } catch {
      return '';
    }
  };
  return Object.assign(child, { output });
}

/** Waits until a cache server we started answers `url`/nix-cache-info; else stops it and says why, with its log. */
export async function waitUntilServing(
  child: ChildProcess & { output: () => string },
  url: string,
  what: string,
): Promise<void> {
  try {
    await waitForHttp(`${url}/nix-cache-info`, 10_000, child);
  } catch (error) {
    await stopProcess(child);
    throw new Error(`${what} did not start: ${String(error)}\n${child.output()}`);
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Waits up to `ms` for a child to exit on its own (e.g. after a shutdown request). */
export async function waitForExit(child: ChildProcess, ms: number): Promise<void> {
  if (hasExited(child)) return;
  await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(ms)]);
}

/** Stops a child we started (SIGTERM, then SIGKILL after a grace period) and waits for it. */
export async function stopProcess(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (hasExited(child)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Peak resident memory of a live process in MB: the kernel's high-water mark (VmHWM), which
 * catches short spikes that sampling would miss. Read it before the process exits.
 */
export function peakRssMB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/** Fields of /proc/<pid>/stat after the parenthesised command name (field 3 onwards). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds (user + system) a live process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  // utime and stime are fields 14 and 15 overall.
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/**
 * CPU seconds of a live process's children so far: those it has waited for (cutime and cstime,
 * fields 16 and 17) and those still running, with their own children. Zero for a process gone
 * meanwhile.
 */
export function childrenCpuSeconds(pid: number): number {
  try {
    const fields = statFields(pid);
    let seconds = (Number(fields[13]) + Number(fields[14])) / USER_HZ;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const child of children ? children.split(' ') : []) {
        try {
          seconds += cpuSeconds(Number(child)) + childrenCpuSeconds(Number(child));
        } catch {
          // exited meanwhile
        }
      }
    }
    return seconds;
  } catch {
    return 0;
  }
}
