/**
 * Points Nix at the proxy: a marked block in a nix.conf that adds the proxy as a substituter, trusts
 * the server's keys, turns on `fallback` and installs the post-build hook. The substituter URL holds
 * the job's secret path, so it sits in a 0600 file of its own that the block `!include`s: nix.conf
 * stays world-readable, and a reader who may not read the file (another user, a sandboxed build)
 * learns nothing (Nix skips an `!include` it cannot read).
 *
 * `post-build-hook` and `substituters` are honoured only from the configuration of whoever runs the
 * builds. Without a Nix daemon (single-user) that is the runner user, so the user's nix.conf is
 * enough. With a daemon, builds run inside the daemon, which reads only the system nix.conf, so that
 * file changes and the daemon restarts (systemd on Linux, launchd on macOS).
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { runCommand } from './command.js';
import { NIX_CONF_BLOCK_BEGIN, NIX_CONF_BLOCK_END } from './constants.js';
import { checkPath, checkProxyUrl, checkPublicKey } from './nix-conf-values.js';

export type NixConfScope = 'user' | 'system';

export interface NixSettings {
  /** The 0600 file that sets the substituter (writeSubstituterFile). */
  substituterFile: string;
  publicKeys: string[];
  postBuildHook?: string;
}

const DAEMON_SOCKET = '/nix/var/nix/daemon-socket/socket';
const NIX_DB = '/nix/var/nix/db';

/** The Nix version string, or undefined when no `nix` is on PATH. */
export async function nixVersion(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  try {
    return (await runCommand('nix', ['--version'], { env, timeoutMs: 30_000 })).trim();
  } catch {
    return undefined;
  }
}

/** Whether builds go through a Nix daemon (multi-user) or run as this user (single-user). */
export function detectScope(env: NodeJS.ProcessEnv = process.env): NixConfScope {
  const remote = env.NIX_REMOTE ?? '';
  if (remote === 'daemon' || remote.startsWith('unix://')) return 'system';
  if (remote !== '' && remote !== 'auto') return 'user';
  // "auto": Nix talks to the daemon when it cannot write the store database itself.
  if (!existsSync(DAEMON_SOCKET)) return 'user';
  try {
    accessSync(NIX_DB, constants.W_OK);
    return 'user';
  } catch {
    return 'system';
  }
}

export function confFile(scope: NixConfScope, env: NodeJS.ProcessEnv = process.env): string {
  if (scope === 'system') return join(env.NIX_CONF_DIR || '/etc/nix', 'nix.conf');
  const userFiles = env.NIX_USER_CONF_FILES?.split(':').filter(Boolean);
  if (userFiles?.[0]) return userFiles[0];
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'nix', 'nix.conf');
}

/** The block; throws NixConfValueError when a value does not look exactly as it should. */
export function renderBlock(settings: NixSettings): string {
  const lines = [
    NIX_CONF_BLOCK_BEGIN,
    // `!include`: a file that is gone or unreadable is skipped, not an error.
    `!include ${checkPath(settings.substituterFile, 'the substituter file')}`,
    `extra-trusted-public-keys = ${settings.publicKeys.map(checkPublicKey).join(' ')}`,
    // The proxy or the server may go away mid-job: Nix then builds instead of failing.
    'fallback = true',
  ];
  if (settings.postBuildHook)
    lines.push(`post-build-hook = ${checkPath(settings.postBuildHook, 'the post-build hook')}`);
  lines.push(NIX_CONF_BLOCK_END);
  return lines.join('\n') + '\n';
}

/** The file's text with any earlier Sluice block removed, so writing twice never stacks blocks. */
export function withoutBlock(text: string): string {
  const begin = text.indexOf(NIX_CONF_BLOCK_BEGIN);
  if (begin === -1) return text;
  const endMarker = text.indexOf(NIX_CONF_BLOCK_END, begin);
  const end = endMarker === -1 ? text.length : endMarker + NIX_CONF_BLOCK_END.length + 1;
  return text.slice(0, begin) + text.slice(end);
}

function readIfExists(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** Writes a file, through `sudo` when this user may not (the system nix.conf on a hosted runner). */
async function writeMaybeSudo(file: string, text: string): Promise<void> {
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw error;
    // quiet: tee echoes the file's text, which the log does not need.
    await runCommand('sudo', ['-n', 'tee', file], { input: text, quiet: true, timeoutMs: 30_000 });
  }
}

/**
 * The substituter setting, in a file only this user can read (and root: in multi-user mode the Nix
 * daemon, which runs as root, reads it; the build users cannot).
 */
export function writeSubstituterFile(stateDir: string, proxyUrl: string): string {
  const file = join(stateDir, 'nix-substituter.conf');
  writeFileSync(file, `extra-substituters = ${checkProxyUrl(proxyUrl)}\n`, { mode: 0o600 });
  return file;
}

export async function writeNixConf(file: string, settings: NixSettings): Promise<void> {
  const block = renderBlock(settings);
  const current = withoutBlock(readIfExists(file));
  const separator = current === '' || current.endsWith('\n') ? '' : '\n';
  await writeMaybeSudo(file, current + separator + block);
}

/** Takes the Sluice block out again; true when there was one. */
export async function removeNixConf(file: string): Promise<boolean> {
  const current = readIfExists(file);
  const cleaned = withoutBlock(current);
  if (cleaned === current) return false;
  await writeMaybeSudo(file, cleaned);
  return true;
}

/** Restarts the Nix daemon so it reads the changed system nix.conf; returns how, or throws. */
export async function restartNixDaemon(): Promise<string> {
  if (process.platform === 'darwin') {
    await runCommand('sudo', ['-n', 'launchctl', 'kickstart', '-k', 'system/org.nixos.nix-daemon'], {
      timeoutMs: 60_000,
    });
    return 'launchctl kickstart -k system/org.nixos.nix-daemon';
  }
  if (!existsSync('/run/systemd/system')) {
    // Containers and self-hosted runners without systemd start nix-daemon some other way.
    throw new Error(
      'systemd is not running here, so the Action cannot restart nix-daemon: restart it after this step',
    );
  }
  await runCommand('sudo', ['-n', 'systemctl', 'restart', 'nix-daemon.service'], { timeoutMs: 60_000 });
  return 'systemctl restart nix-daemon.service';
}

/** The effective substituters as Nix itself sees them, to check that the change took. */
export async function effectiveSubstituters(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const stdout = await runCommand(
    'nix',
    ['--extra-experimental-features', 'nix-command', 'show-config', '--json'],
    { env, timeoutMs: 30_000, quiet: true },
  );
  const config = JSON.parse(stdout) as { substituters?: { value?: string[] } };
  return config.substituters?.value ?? [];
}

/**
 * The post-build hook: a shell script (Nix runs it with no arguments) that hands the build to the
 * daemon through the hook bundle. It always exits 0 and gives up quickly, because a failing hook
 * stops Nix from running further builds.
 */
export function writeHookScript(
  stateDir: string,
  nodePath: string,
  hookBundle: string,
  proxyUrl: string,
  controlSecretFile: string,
): string {
  const file = join(stateDir, 'post-build-hook.sh');
  // The control secret's file, not the secret: argv is visible to every local process.
  const program = [nodePath, hookBundle, proxyUrl, controlSecretFile].map(sh).join(' ');
  const script = [
    '#!/bin/sh',
    '# Sluice: reports each local build to the proxy, which pushes it. Never fails the build.',
    `if [ -x ${sh(nodePath)} ] && [ -f ${sh(hookBundle)} ]; then`,
    `  ${program} >/dev/null 2>&1 </dev/null || true`,
    'fi',
    'exit 0',
    '',
  ].join('\n');
  writeFileSync(file, script, { mode: 0o755 });
  return file;
}

function sh(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
