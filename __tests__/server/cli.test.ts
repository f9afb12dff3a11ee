/** `sluice serve` and `sluice audit` as separate processes, from a fresh directory with no config. */
import { describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnCli } from '../support/server.js';

async function output(
  child: ReturnType<typeof spawnCli>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

describe('sluice serve', () => {
  it('with no config serves from ./sluice-data, prints its URL and key, and stops cleanly on SIGTERM', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'sluice-fresh-'));
    // Port 0 instead of the default 8080: tests never take fixed ports.
    const child = spawnCli(['serve', '--listen', '127.0.0.1:0'], { cwd });
    const done = output(child);
    let banner = '';
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        banner += chunk;
        const found =
          /serving the cache at (http:\/\/\S+)\n[\s\S]*public key \(for trusted-public-keys\): (\S+:\S+)\n/.exec(
            banner,
          );
        if (found) resolve(found);
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}: ${banner}`)));
    });
    const [, url, publicKey] = match as unknown as [string, string, string];
    expect(publicKey).toMatch(/^[A-Za-z0-9.-]+:[A-Za-z0-9+/]{43}=$/);

    const health = await fetch(`${url}/_api/v1/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({
      status: 'ok',
      public_key: publicKey,
      public_keys: [publicKey],
      public_reads: false,
    });
    const info = await fetch(`${url}/nix-cache-info`);
    expect(await info.text()).toContain('StoreDir: /nix/store');

    const data = join(cwd, 'sluice-data');
    expect(statSync(join(data, 'signing-key.sec')).mode & 0o777).toBe(0o600);
    expect(statSync(join(data, 'sluice.db')).isFile()).toBe(true);

    child.kill('SIGTERM');
    const { code, stdout } = await done;
    expect(code).toBe(0);
    // stdout is JSON logs only.
    for (const line of stdout.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();

    // A second start reuses the key.
    const again = spawnCli(['serve', '--listen', '127.0.0.1:0'], { cwd });
    const againDone = output(again);
    await new Promise((resolve) => again.stderr.once('data', resolve));
    again.kill('SIGTERM');
    expect((await againDone).stderr).toContain(publicKey);
  });

  it('--help explains every command; bad flags exit 2 naming the problem', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'sluice-help-'));
    for (const command of ['serve', 'audit', 'token']) {
      const { code, stdout } = await output(spawnCli([command, '--help'], { cwd }));
      expect(code).toBe(0);
      expect(stdout).toContain(`usage: sluice ${command}`);
    }
    const top = await output(spawnCli(['--help'], { cwd }));
    expect(top.stdout).toMatch(/serve[\s\S]*token create[\s\S]*audit/);
    const bad = await output(spawnCli(['serve', '--port', '1'], { cwd }));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Unknown option '--port'");
    const badListen = await output(spawnCli(['serve', '--listen', 'nowhere'], { cwd }));
    expect(badListen.code).toBe(1);
    expect(badListen.stderr).toContain('--listen');
  });
});
