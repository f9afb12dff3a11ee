import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runToken } from '../../../src/cli/token-command.js';
import { parseConfig } from '../../../src/server/config/server-config.js';
import { createExchange, loadOrCreateTokenKey, tokenKeyPath } from '../../../src/server/exchange/index.js';

async function sluiceToken(...argv: string[]) {
  const capture = () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
  };
  const stdout = capture();
  const stderr = capture();
  const code = await runToken(argv, { stdout: stdout.stream, stderr: stderr.stream });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** Verifies a token the way the server would: with the token key of the data dir. */
async function verifyWithDataDir(dataDir: string, token: string) {
  const { key } = await loadOrCreateTokenKey(tokenKeyPath(dataDir));
  return createExchange(parseConfig(''), key).verifyCacheToken(token);
}

describe('sluice token create', () => {
  it('prints one read-only token line that the server (same data dir) accepts', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'sluice-cli-')), 'data');
    const result = await sluiceToken(
      'create',
      '--read',
      'acme/*',
      '--read',
      'oss/tools,oss/docs',
      '--ttl',
      '30d',
      '--name',
      'laptop',
      '--data',
      data,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(result.stderr).toMatch(/created a new token key/);
    expect(await verifyWithDataDir(data, result.stdout.trim())).toEqual({
      kind: 'read',
      read: ['acme/*', 'oss/tools', 'oss/docs'],
      write: null,
      bindWrite: false,
      identity: { name: 'laptop' },
      issued: { id: expect.any(String), at: expect.any(Number) },
      expiresAt: expect.any(Number),
    });
  });

  it('takes the data dir from --config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
    const data = join(dir, 'from-config');
    writeFileSync(join(dir, 'sluice.yml'), `data: ${data}\n`);
    const result = await sluiceToken('create', '--read', 'acme/app', '--config', join(dir, 'sluice.yml'));
    expect(result.code).toBe(0);
    expect((await verifyWithDataDir(data, result.stdout.trim())).read).toEqual(['acme/app']);
  });

  it.each([
    [['create'], 2, /--read is required/],
    [['create', '--read', 'a', '--write', 'a'], 2, /Unknown option '--write'/],
    [['rotate'], 2, /unknown subcommand 'rotate'/],
    [['revoke'], 2, /give exactly one token id/],
    [['create', '--read', 'a', '--ttl', 'forever'], 1, /--ttl: "forever" is not a duration/],
    [['create', '--read', '../x'], 1, /'..\/x' is not a slice name or pattern/],
    [
      ['create', '--read', 'a', '--config', '/nonexistent/sluice.yml'],
      1,
      /cannot read the config file: ENOENT/,
    ],
  ])('refuses %j (exit %i) with a clear message and prints no token', async (argv, code, message) => {
    const data = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
    const result = await sluiceToken(...argv, ...(argv.includes('--config') ? [] : ['--data', data]));
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code, stdout: '' });
    expect(result.stderr).toMatch(message);
  });
});
