/**
 * What the push engine asks of the local Nix store, through the real `nix` commands: path
 * metadata for a closure, the outputs of a derivation, and a NAR dump as a stream.
 */
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { Hash } from '../nix/hash.js';

const execFileAsync = promisify(execFile);

export interface PathInfo {
  path: string;
  narHash: Hash;
  narSize: number;
  /** Full store paths, self-references included, as Nix lists them. */
  references: string[];
  deriver?: string;
  ca?: string;
}

/** `nix` with the CLI enabled whatever the machine's nix.conf says. */
const NIX_COMMAND = ['--extra-experimental-features', 'nix-command'];

export class LocalStore {
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  private async run(command: string, args: string[]): Promise<string> {
    try {
      const { stdout } = await execFileAsync(command, args, {
        env: this.env,
        maxBuffer: 256 * 1024 * 1024,
        encoding: 'utf8',
      });
      return stdout;
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? '').trim();
      throw new Error(
        `${command} ${args.filter((a) => !NIX_COMMAND.includes(a)).join(' ')} failed: ${stderr || (e as Error).message}`,
      );
    }
  }

  /** Metadata of every path in the closure of `paths` (the paths themselves included). */
  async closureInfo(paths: string[]): Promise<PathInfo[]> {
    if (paths.length === 0) return [];
    const out = await this.run('nix', [...NIX_COMMAND, 'path-info', '--json', '--recursive', '--', ...paths]);
    const json = JSON.parse(out) as {
      path: string;
      valid?: boolean;
      narHash?: string;
      narSize?: number;
      references?: string[];
      deriver?: string;
      ca?: string;
    }[];
    return json.map((entry) => {
      if (entry.valid === false || entry.narHash === undefined || entry.narSize === undefined) {
        throw new Error(`${entry.path} is not a valid store path`);
      }
      const info: PathInfo = {
        path: entry.path,
        narHash: Hash.parse(entry.narHash),
        narSize: entry.narSize,
        references: entry.references ?? [],
      };
      if (entry.deriver) info.deriver = entry.deriver;
      if (entry.ca) info.ca = entry.ca;
      return info;
    });
  }

  /** The output paths of a derivation (the post-build hook's fallback when OUT_PATHS is empty). */
  async derivationOutputs(drvPath: string): Promise<string[]> {
    const out = await this.run('nix-store', ['--query', '--outputs', drvPath]);
    return out.split('\n').filter(Boolean);
  }

  /** `nix-store --dump path`: the NAR on stdout; the caller checks `exited`. */
  dump(path: string): { stream: Readable; exited: Promise<void>; kill: () => void } {
    const child: ChildProcessByStdio<null, Readable, Readable> = spawn('nix-store', ['--dump', path], {
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    const exited = new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (code === 0) resolve();
        else
          reject(
            new Error(`nix-store --dump ${path} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`),
          );
      });
    });
    return { stream: child.stdout, exited, kill: () => child.kill('SIGKILL') };
  }
}
