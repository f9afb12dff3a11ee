/**
 * Multi-user Nix: builds run inside a real `nix-daemon` (on a socket of its own, with the test
 * machine's NIX_CONF_DIR as its "/etc/nix"), so the Action must change the system nix.conf. No
 * systemd runs here, so the Action reports that it could not restart the daemon; the test then
 * restarts it as systemd would, and the daemon's builds get pushed through the hook.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeNixMachine, salt, type NixMachine } from '../support/nix.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { derivationExpr, pushedInBackground } from './support.js';

let dist: string;
let server: TestServer;
let machine: NixMachine;
let socket: string;
let nixDaemon: ChildProcess | undefined;

async function startNixDaemon(): Promise<void> {
  nixDaemon = spawn('nix-daemon', [], {
    env: { ...machine.env, NIX_DAEMON_SOCKET_PATH: socket },
    stdio: 'ignore',
  });
  while (!existsSync(socket)) await sleep(50);
}

async function stopNixDaemon(): Promise<void> {
  const child = nixDaemon;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
  rmSync(socket, { force: true }); // so startNixDaemon waits for the new one
}

beforeAll(async () => {
  dist = buildActionBundles();
  server = await startTestServer();
  machine = makeNixMachine();
  socket = join(machine.dir, 'daemon-socket');
  await startNixDaemon();
});
afterAll(async () => {
  await stopNixDaemon();
  await server?.close();
});

describe('with a Nix daemon running the builds', () => {
  it('changes the system nix.conf, says the daemon needs a restart, and pushes once it has one', async () => {
    const job = new Job({
      dist,
      machine,
      inputs: { server: server.url, listen: '127.0.0.1:0', 'upstream-caches': '' },
      idTokenRequest: server.issuer.runner,
      env: { NIX_REMOTE: 'daemon', NIX_DAEMON_SOCKET_PATH: socket },
    });
    const main = await job.runMain();
    expect(main.exitCode).toBe(0);
    const systemConf = join(machine.env.NIX_CONF_DIR!, 'nix.conf');
    const { stateDir } = job.savedState() as { stateDir: string };
    expect(readFileSync(systemConf, 'utf8')).toContain(`!include ${stateDir}/nix-substituter.conf`);
    expect(readFileSync(`${stateDir}/nix-substituter.conf`, 'utf8')).toContain(
      `extra-substituters = ${main.outputs.substituter}/`,
    );
    expect(existsSync(join(machine.env.XDG_CONFIG_HOME!, 'nix', 'nix.conf'))).toBe(false);
    expect(main.warnings.join('\n')).toContain('could not restart the Nix daemon');

    // What `systemctl restart nix-daemon` does on a runner: the daemon reads the changed nix.conf.
    await stopNixDaemon();
    await startNixDaemon();
    const [built] = await job.nixBuild(derivationExpr('sluice-e2e-multi-user', salt()));
    // The daemon ran the post-build hook: the path is pushed during the job, before the post step.
    expect(await pushedInBackground(server, job, [built!])).toBe(true);

    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    expect(post.summary).toContain('system-wide');
    expect(readFileSync(systemConf, 'utf8')).not.toContain('sluice');
  }, 120_000);
});
