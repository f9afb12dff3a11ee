/**
 * Runs the real `nix` binaries in an isolated, offline configuration.
 *
 * Every Nix process started through here gets its own NIX_CONF_DIR (so /etc/nix is never read or
 * changed), its own narinfo disk cache (XDG_CACHE_HOME) and no default substituters.
 */
import { execFile, type ExecFileOptions } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const NIX_CONF = [
  'sandbox = false',
  'experimental-features = nix-command flakes',
  'substituters =',
  'build-users-group =',
  'narinfo-cache-negative-ttl = 0',
  'narinfo-cache-positive-ttl = 0',
  '',
].join('\n');

/** An isolated Nix "machine": config dir, caches and home of its own; the store is the shared /nix/store. */
export interface NixMachine {
  dir: string;
  env: NodeJS.ProcessEnv;
}

export function makeNixMachine(extraConf = ''): NixMachine {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nix-'));
  const confDir = join(dir, 'etc-nix');
  mkdirSync(confDir);
  writeFileSync(join(confDir, 'nix.conf'), NIX_CONF + extraConf);
  const home = join(dir, 'home');
  mkdirSync(home);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    NIX_CONF_DIR: confDir,
    XDG_CACHE_HOME: join(dir, 'cache'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    NIX_REMOTE: '',
  };
  return { dir, env };
}

const defaultMachine = makeNixMachine();

export async function nix(
  command: string,
  args: string[],
  options: {
    machine?: NixMachine;
    input?: string;
    maxBuffer?: number;
    env?: NodeJS.ProcessEnv;
    /** Kills the command (SIGKILL) after this long and rejects. */
    timeoutMs?: number;
  } = {},
): Promise<string> {
  const machine = options.machine ?? defaultMachine;
  const execOptions: ExecFileOptions = {
    env: { ...machine.env, ...options.env },
    maxBuffer: options.maxBuffer ?? 64 * 1024 * 1024,
    encoding: 'utf8',
    ...(options.timeoutMs ? { timeout: options.timeoutMs, killSignal: 'SIGKILL' as const } : {}),
  };
  const { stdout } = await execFileAsync(command, args, execOptions);
  return String(stdout);
}

/** Builds a Nix expression and returns the output store paths (one per line of nix-build). */
export async function nixBuild(expression: string, machine?: NixMachine): Promise<string[]> {
  const out = await nix('nix-build', ['--no-out-link', '--expr', expression], { machine });
  return out.trim().split('\n').filter(Boolean);
}

/** A unique salt so every test run makes fresh store paths. */
export function salt(): string {
  return `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

/**
 * An expression for a chain of derivations with random contents and references between them:
 * path i refers to path i-1. Returns the whole closure's top path when built.
 */
export function randomChainExpr(count: number, bytesEach: number, tag = salt()): string {
  return `let
    mk = i: prev: derivation {
      name = "sluice-test-\${toString i}";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      salt = "${tag}";
      args = [ "-c" "/bin/mkdir $out && /usr/bin/head -c ${bytesEach} /dev/urandom > $out/data && echo \${prev} > $out/prev" ];
    };
    go = i: prev: if i > ${count} then prev else go (i + 1) (mk i prev);
  in go 1 ""`;
}

/**
 * `count` new tiny store paths without references (`<prefix>-<i>`, i from 0), added by one
 * `nix-store --add` (a build per path would take minutes). Returned in the order of i.
 */
export async function addTinyPaths(count: number, prefix: string, machine?: NixMachine): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tiny-'));
  try {
    const tag = salt();
    const names = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
    for (const name of names) writeFileSync(join(dir, name), `${name} ${tag}\n`);
    const out = await nix('nix-store', ['--add', ...names.map((name) => join(dir, name))], { machine });
    return out.trim().split('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
