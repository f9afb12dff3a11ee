/**
 * The programs the Action runs (nix, nix-store, sudo, systemctl, launchctl) go through
 * `@actions/exec`, so each shows in the step's log as `[command]/usr/bin/nix --version`, the way
 * workflow authors see every other action's commands. Output that is data rather than news (nix's
 * JSON configuration, validity lists) is captured without being echoed. The daemon is the exception:
 * it is spawned detached (`daemon.ts`), which `@actions/exec` cannot do.
 */
import { getExecOutput } from '@actions/exec';
import { Writable } from 'node:stream';

export interface CommandOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin. */
  input?: string;
  /** The step stops waiting after this long (`@actions/exec` has no timeout of its own). */
  timeoutMs: number;
  /** Log the command line only (cut to 200 characters), not its stdout. */
  quiet?: boolean;
}

const COMMAND_LINE_SHOWN = 200;

/** Passes on `@actions/exec`'s `[command]…` line, shortened; drops the output that follows. */
function commandLineOnly(): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString();
      if (text.startsWith('[command]')) {
        const line = text.trimEnd();
        process.stdout.write(
          `${line.length > COMMAND_LINE_SHOWN ? `${line.slice(0, COMMAND_LINE_SHOWN)} …` : line}\n`,
        );
      }
      done();
    },
  });
}

/** Runs `command args`; resolves with its stdout, rejects naming the command and its stderr. */
export async function runCommand(command: string, args: string[], options: CommandOptions): Promise<string> {
  const env = options.env
    ? Object.fromEntries(
        Object.entries(options.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
      )
    : undefined;
  const running = getExecOutput(command, args, {
    ...(env ? { env } : {}),
    ...(options.input !== undefined ? { input: Buffer.from(options.input) } : {}),
    ...(options.quiet ? { outStream: commandLineOnly() } : {}),
    ignoreReturnCode: true,
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`${command} ${args[0] ?? ''} did not finish within ${options.timeoutMs / 1000} s`)),
      options.timeoutMs,
    );
    timer.unref();
  });
  try {
    const { exitCode, stdout, stderr } = await Promise.race([running, timeout]);
    if (exitCode !== 0) {
      const said = stderr.trim().split('\n').at(-1);
      throw new Error(
        `${command} ${args.slice(0, 3).join(' ')} exited with ${exitCode}${said ? `: ${said}` : ''}`,
      );
    }
    return stdout;
  } finally {
    clearTimeout(timer);
  }
}
