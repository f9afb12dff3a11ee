/** A description of the machine a run happened on, stored next to its results. */
import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { canDropPageCache } from './page-cache.js';

export interface MachineDescription {
  nproc: number;
  memoryGiB: number;
  cpuModel: string;
  node: string;
  nix: string;
  nginx: string;
  kernel: string;
  /** Whether the push samples start from a dropped page cache (`page-cache.ts`). */
  pageCacheDropped: boolean;
}

/** First line a command prints on stdout or stderr (`nginx -v` uses stderr), or why it could not run. */
function versionOf(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error) return `not available (${result.error.message})`;
  return `${result.stdout}${result.stderr}`.trim().split('\n')[0] ?? '';
}

export function describeMachine(nginxBinary: string | undefined): MachineDescription {
  return {
    nproc: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    nix: versionOf('nix', ['--version']),
    nginx: nginxBinary ? versionOf(nginxBinary, ['-v']) : 'not installed',
    kernel: versionOf('uname', ['-sr']),
    pageCacheDropped: canDropPageCache(),
  };
}
