/**
 * How the daemon's Node process is started: the same for the Action's main step and the
 * benchmark. Measured on a 1 GiB push: peak RSS ~176 → ~118 MB, CPU no worse (with
 * the GC pacing below, ~118 → ~92 MB).
 */

/**
 * A 1 MiB young generation (by default it grows to 16 MiB per semi-space): the daemon's JS objects
 * are few and short-lived, and the buffers they hold are freed at each scavenge rather than piling
 * up until a full GC. `--expose-gc`: the push collects its spent buffers on a schedule of bytes
 * (`GcPacer` in src/nix/gc-pacer.ts).
 */
export const DAEMON_NODE_ARGS: readonly string[] = ['--max-semi-space-size=1', '--expose-gc'];

/**
 * One malloc arena: zstd allocates its work buffers on the thread-pool threads, and each such
 * thread would otherwise keep an arena (and its freed memory) of its own.
 */
export function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX ?? '1' };
}
