/**
 * `@actions/cache`'s restore (its download and tar) in a child process of the daemon, with a heap
 * of its own: run in the daemon's thread, next to the daemon reading the same archive as it lands,
 * the two made V8 run a full collection every 50–70 ms (docs/benchmarks.md, "Job 2's restore,
 * profiled"). The child is the daemon's own bundle started with `RESTORE_CHILD_ARG`; they talk over
 * the IPC channel: the daemon sends what to restore (and later which member tar is to leave out),
 * the child answers with the outcome and exits. The cache service's token reaches the child in its
 * environment, never in argv or a message. The child leads a process group of its own (with the
 * tar it runs): it ends it when the daemon goes away, and the daemon ends it when it stops.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { restorePack, skipWhenExtracting, type CacheOutcome } from '../../contracts/pack-cache.js';

/** argv[2] of the daemon's bundle that makes it the restore child. */
export const RESTORE_CHILD_ARG = '--pack-restore';

export interface RestoreRequest {
  /** Where @actions/cache extracts the archive (`<dir>/sluice-pack/`). */
  dir: string;
  key: string;
  restoreKeys: string[];
  /** Where it downloads the archive to (stream-restore.ts reads it there as it lands). */
  tempDir: string;
}

type ToChild = { type: 'restore'; request: RestoreRequest } | { type: 'exclude'; member: string };
type FromChild = { type: 'outcome'; outcome: CacheOutcome };

/** A restore under way in its child process. */
export interface RunningRestore {
  /** Settles when the restore is over (download and extraction); never rejects. */
  outcome: Promise<CacheOutcome>;
  /** Asks the restore's tar to leave `member` out (`skipWhenExtracting`), if it has not started yet. */
  exclude(member: string): void;
  /** Ends the restore (the daemon is stopping). */
  stop(): void;
  /** The restore process's pid, once it started. */
  pid?: number;
}

/**
 * The restore in a child process: `script` is the daemon's bundle, started again with
 * `RESTORE_CHILD_ARG` and `env` added to the daemon's environment. A child that dies before it
 * answered (killed, out of memory) is a failed restore, as a failed download is.
 */
export function restoreInChild(
  script: string,
  request: RestoreRequest,
  env: Record<string, string>,
): RunningRestore {
  let child: ChildProcess | undefined;
  let answered = false;
  const outcome = new Promise<CacheOutcome>((resolve) => {
    try {
      child = fork(script, [RESTORE_CHILD_ARG], {
        env: { ...process.env, ...env },
        // A plain Node, as a restore without Sluice runs: not the daemon's small young generation.
        execArgv: [],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        detached: true,
      });
    } catch (e) {
      resolve({ ok: false, error: `the restore process did not start: ${(e as Error).message}` });
      return;
    }
    child.on('message', (message: FromChild) => {
      if (message.type !== 'outcome') return;
      answered = true;
      resolve(message.outcome);
    });
    child.on('error', (e) => resolve({ ok: false, error: `the restore process failed: ${e.message}` }));
    child.on('exit', (code, signal) => {
      if (!answered)
        resolve({
          ok: false,
          error: `the restore process ${signal ? `was killed (${signal})` : `exited with code ${code}`} before it finished`,
        });
    });
    send({ type: 'restore', request });
  });
  function send(message: ToChild): void {
    if (child?.connected) child.send(message, (e) => void e);
  }
  return {
    outcome,
    ...(child?.pid !== undefined ? { pid: child.pid } : {}),
    exclude: (member) => send({ type: 'exclude', member }),
    stop: () => {
      // Its group: the child and the tar it may be running. Only while the child is not reaped,
      // so the group's id is still its.
      if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    },
  };
}

/** Ends this process and the tar it may be running (its process group, which it leads). */
function endGroup(): never {
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    // Not a group leader (started otherwise than by restoreInChild): this process alone.
  }
  process.exit(1);
}

/** The child's side: one restore as the daemon asks, its outcome sent back, then exit. */
export function runRestoreChild(): void {
  if (!process.send) {
    process.stderr.write(`${RESTORE_CHILD_ARG} is started by the proxy daemon only\n`);
    process.exit(2);
  }
  const answer = (outcome: CacheOutcome): void => {
    const message: FromChild = { type: 'outcome', outcome };
    process.send!(message, undefined, {}, () => process.exit(0));
  };
  // The daemon went away (stopped, killed): the restore is of no use any more.
  process.on('disconnect', endGroup);
  process.on('uncaughtException', (e) => answer({ ok: false, error: e.message }));
  process.on('unhandledRejection', (e) => answer({ ok: false, error: String(e) }));
  let started = false;
  process.on('message', (message: ToChild) => {
    if (message.type === 'exclude') skipWhenExtracting(message.member);
    else if (message.type === 'restore' && !started) {
      started = true;
      const { dir, key, restoreKeys, tempDir } = message.request;
      void restorePack(dir, key, restoreKeys, tempDir).then(answer);
    }
  });
}
