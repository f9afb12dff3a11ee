/**
 * What the push engine asks of the local Nix store, through the real `nix` commands: path
 * metadata for a closure and the outputs of a derivation.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Hash } from '../../nix/hash.js';

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
const MAX_PATHS_PER_COMMAND = 1000;

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
    // A store diff can list more paths than one command line holds.
    const infos = new Map<string, PathInfo>();
    for (let i = 0; i < paths.length; i += MAX_PATHS_PER_COMMAND) {
      for (const info of await this.closureInfoBatch(paths.slice(i, i + MAX_PATHS_PER_COMMAND))) {
        infos.set(info.path, info);
      }
    }
    return [...infos.values()];
  }

  private async closureInfoBatch(paths: string[]): Promise<PathInfo[]> {
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

  /** Those of `paths` that are not valid in the store. */
  async invalidPaths(paths: string[]): Promise<string[]> {
    const invalid: string[] = [];
    for (let i = 0; i < paths.length; i += MAX_PATHS_PER_COMMAND) {
      const batch = paths.slice(i, i + MAX_PATHS_PER_COMMAND);
      const out = await this.run('nix-store', ['--check-validity', '--print-invalid', ...batch]);
      invalid.push(...out.split('\n').filter(Boolean));
    }
    return invalid;
  }

  /** The output paths of a derivation (the post-build hook's fallback when OUT_PATHS is empty). */
  async derivationOutputs(drvPath: string): Promise<string[]> {
    const out = await this.run('nix-store', ['--query', '--outputs', drvPath]);
    return out.split('\n').filter(Boolean);
  }
}
