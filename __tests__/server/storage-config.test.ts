/**
 * The storage, database and keys config: parsing, SLUICE_DATABASE_URL, and `sluice serve` refusing
 * to start with one line naming the key and the problem when a store or key cannot be used.
 */
import { describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startFromArgs } from '../../src/cli/serve-command.js';
import { runKeys } from '../../src/cli/keys-command.js';
import { applyEnvironment, parseConfig } from '../../src/server/config/server-config.js';
import { freshBucket, freshDatabase, testS3Endpoint } from '../support/backends.js';
import { spawnCli, startTestServer } from '../support/server.js';

const tempDir = () => mkdtempSync(join(tmpdir(), 'sluice-storage-config-'));

function capture() {
  let text = '';
  const stream = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      text += chunk;
      done();
    },
  });
  return { stream, text: () => text };
}

/** Runs `sluice serve --config FILE` in this process; returns the exit code and stderr (the server must not start). */
async function serveFails(
  yaml: string,
  env: Record<string, string> = {},
): Promise<{ code: unknown; stderr: string }> {
  const dir = tempDir();
  writeFileSync(join(dir, 'sluice.yml'), yaml);
  const saved = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]));
  Object.assign(process.env, env);
  const stderr = capture();
  try {
    const started = await startFromArgs(
      ['--config', join(dir, 'sluice.yml'), '--listen', '127.0.0.1:0', '--data', join(dir, 'data')],
      { stdout: capture().stream, stderr: stderr.stream },
    );
    if (typeof started !== 'number') await started.close();
    return { code: started, stderr: stderr.text() };
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

describe('config: storage, database, keys', () => {
  it('parses the S3, PostgreSQL and key file settings, with defaults for the rest', () => {
    const config = parseConfig(`
storage:
  blobs: { type: s3, bucket: sluice, endpoint: 'http://127.0.0.1:7480/', region: eu-west-1,
           prefix: 'nars/', force_path_style: true, presigned_downloads: true, part_size: 64MiB }
database: postgres://sluice:secret@db.example:5432/sluice
keys: { signing_key_file: /etc/sluice/signing.sec, token_key_file: /etc/sluice/token.pem }
`);
    expect(config.blobs).toEqual({
      type: 's3',
      bucket: 'sluice',
      endpoint: 'http://127.0.0.1:7480',
      region: 'eu-west-1',
      prefix: 'nars/',
      forcePathStyle: true,
      presignedDownloads: true,
      presignTtlSeconds: 300,
      partSize: 64 * 1024 ** 2,
      // Two parts of 64 MiB: one upload always has both of its buffers.
      partBuffers: 128 * 1024 ** 2,
      abortIncompleteAfterSeconds: 24 * 3600,
    });
    expect(config.database).toEqual({
      url: 'postgres://sluice:secret@db.example:5432/sluice',
      source: 'database',
    });
    expect(config.keys).toEqual({
      signingKeyFile: '/etc/sluice/signing.sec',
      tokenKeyFile: '/etc/sluice/token.pem',
    });
    expect(parseConfig('storage:\n  blobs: { x_accel_redirect: /_sluice_nars/ }\n').blobs).toEqual({
      type: 'fs',
      xAccelRedirect: '/_sluice_nars/',
    });
    const defaults = parseConfig('');
    expect([defaults.blobs, defaults.database, defaults.keys]).toEqual([{ type: 'fs' }, undefined, {}]);
  });

  it.each([
    [
      'storage:\n  blobs: { type: gcs }\n',
      "sluice.yml:2: storage.blobs.type: unknown type 'gcs' (expected fs or s3)",
    ],
    ['storage:\n  blobs: { type: s3 }\n', 'storage.blobs.bucket: expected a non-empty string'],
    [
      'storage:\n  blobs: { type: s3, bucket: Bad_Name }\n',
      "storage.blobs.bucket: 'Bad_Name' is not an S3 bucket name",
    ],
    [
      'storage:\n  blobs: { type: s3, bucket: bkt, part_size: 1MiB }\n',
      'storage.blobs.part_size: must be at least 5MiB',
    ],
    [
      'storage:\n  blobs: { type: s3, bucket: bkt, part_size: 32MiB, part_buffers: 16MiB }\n',
      'storage.blobs.part_buffers: must hold at least one part (part_size is 33554432 bytes)',
    ],
    ['storage:\n  blobs: { type: fs, bucket: bkt }\n', 'storage.blobs.bucket: only applies to type: s3'],
    [
      'storage:\n  blobs: { type: s3, bucket: bkt, x_accel_redirect: /n/ }\n',
      'storage.blobs.x_accel_redirect: only applies to type: fs',
    ],
    ...['nars/', '/nars', '/../etc/', '/a b/', '/n/?x/', '/n\r\nX-Evil: 1/', '//'].map((prefix) => [
      `storage:\n  blobs: { type: fs, x_accel_redirect: ${JSON.stringify(prefix)} }\n`,
      `storage.blobs.x_accel_redirect: ${JSON.stringify(prefix)} is not an nginx location prefix such as /_sluice_nars/`,
    ]),
    ['storage:\n  blobs: { type: s3, bucket: bkt, colour: red }\n', 'storage.blobs.colour: unknown key'],
    ['database: mysql://u:hunter2@h/db\n', 'sluice.yml:1: database: must be a postgres:// URL, not mysql://'],
    ['keys: { signing_key: /x }\n', 'keys.signing_key: unknown key'],
  ])('refuses %j naming the key', (yaml, message) => {
    expect(() => parseConfig(yaml, 'sluice.yml')).toThrow(message);
    // A database URL may carry a password: errors never echo it.
    expect(() => parseConfig(yaml, 'sluice.yml')).not.toThrow('hunter2');
  });

  it('SLUICE_DATABASE_URL overrides the file, and a bad one is refused without echoing it', () => {
    const config = parseConfig('database: postgres://a@file-host/db\n');
    expect(applyEnvironment(config, { SLUICE_DATABASE_URL: 'postgres://u:p@env-host/db' }).database).toEqual({
      url: 'postgres://u:p@env-host/db',
      source: 'SLUICE_DATABASE_URL',
    });
    expect(applyEnvironment(config, {}).database?.source).toBe('database');
    expect(() => applyEnvironment(config, { SLUICE_DATABASE_URL: 'hunter2' })).toThrow(
      /^SLUICE_DATABASE_URL: is not a URL \(expected postgres:\/\/USER:PASSWORD@HOST:PORT\/DATABASE\)$/,
    );
  });
});

describe('sluice serve refuses to start with one line naming the problem', () => {
  const s3Yaml = (bucket: string, endpoint = testS3Endpoint()) =>
    `storage:\n  blobs: { type: s3, bucket: ${bucket}, endpoint: '${endpoint}', force_path_style: true }\n`;

  it.each([
    [
      'an unreachable S3 endpoint',
      async () => ({ yaml: s3Yaml('sluice', `http://127.0.0.1:${await closedPort()}`) }),
      /^sluice serve: storage\.blobs\.endpoint: cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.*\n$/,
    ],
    [
      'a missing bucket',
      async () => ({ yaml: s3Yaml('no-such-bucket') }),
      /^sluice serve: storage\.blobs\.bucket: bucket 'no-such-bucket' does not exist at http:\/\/127\.0\.0\.1:\d+\n$/,
    ],
    [
      'wrong S3 credentials',
      async () => ({
        yaml: s3Yaml((await freshBucket()).bucket),
        env: { AWS_SECRET_ACCESS_KEY: 'wrong-secret' },
      }),
      /^sluice serve: storage\.blobs: access to bucket 'sluice-t-\w+' at http:\/\/127\.0\.0\.1:\d+ denied: check the credentials .*\n$/,
    ],
    [
      'an unreachable database',
      async () => ({ yaml: `database: postgres://sluice:pw@127.0.0.1:${await closedPort()}/sluice\n` }),
      /^sluice serve: database: cannot use the PostgreSQL database at 127\.0\.0\.1:\d+\/sluice: .*ECONNREFUSED.*\n$/,
    ],
    [
      'a wrong database password, from SLUICE_DATABASE_URL',
      async () => {
        const url = new URL(await freshDatabase());
        url.password = 'hunter2';
        return { yaml: '', env: { SLUICE_DATABASE_URL: url.toString() } };
      },
      /^sluice serve: SLUICE_DATABASE_URL: cannot use the PostgreSQL database at 127\.0\.0\.1:\d+\/sluice_t_\w+: password authentication failed for user "sluice" \(28P01\)\n$/,
    ],
    [
      'a missing key file',
      async () => ({ yaml: 'keys: { signing_key_file: /nonexistent/signing.sec }\n' }),
      /^sluice serve: keys\.signing_key_file: cannot read \/nonexistent\/signing\.sec: no such file \(sluice keys generate DIR writes one\)\n$/,
    ],
  ])('%s', async (_what, setup, expected) => {
    const { yaml, env } = (await setup()) as { yaml: string; env?: Record<string, string> };
    const { code, stderr } = await serveFails(yaml, env);
    expect(stderr).toMatch(expected);
    expect(stderr).not.toContain('hunter2');
    expect(code).toBe(1);
  });

  it('as a process: exit code 1 and the one line, no stack', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'sluice.yml'), s3Yaml('no-such-bucket'));
    const child = spawnCli(['serve', '--config', 'sluice.yml', '--listen', '127.0.0.1:0'], { cwd });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const [code] = (await once(child, 'exit')) as [number];
    expect(stderr).toMatch(
      /^sluice serve: storage\.blobs\.bucket: bucket 'no-such-bucket' does not exist at \S+\n$/,
    );
    expect(code).toBe(1);
  });
});

describe('sluice keys generate', () => {
  it('writes both keys once; servers naming the files sign alike and accept each other’s tokens', async () => {
    const dir = join(tempDir(), 'keys');
    const out = capture();
    expect(
      await runKeys(['generate', dir, '--name', 'cache.example-1'], {
        stdout: out.stream,
        stderr: capture().stream,
      }),
    ).toBe(0);
    expect(statSync(join(dir, 'signing-key.sec')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'token-key.pem')).mode & 0o777).toBe(0o600);
    const again = capture();
    expect(await runKeys(['generate', dir], { stdout: capture().stream, stderr: again.stream })).toBe(1);
    expect(again.text()).toContain('exists: keys are never overwritten');

    const yaml = `keys: { signing_key_file: ${dir}/signing-key.sec, token_key_file: ${dir}/token-key.pem }\n`;
    const [a, b] = await Promise.all([startTestServer({ yaml }), startTestServer({ yaml })]);
    try {
      expect(a.publicKey).toMatch(/^cache\.example-1:/);
      expect(out.text()).toBe(`public key (for trusted-public-keys): ${a.publicKey}\n`);
      expect(b.publicKey).toBe(a.publicKey);
      // A token from one replica's exchange is good at the other.
      const token = await a.ciToken();
      const res = await fetch(`${b.url}/${'0'.repeat(32)}.narinfo`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(404);
      const bad = await fetch(`${b.url}/${'0'.repeat(32)}.narinfo`, {
        headers: { authorization: 'Bearer nope' },
      });
      expect(bad.status).toBe(401);
      expect(a.logs.join('\n')).not.toContain('key file is readable');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('warns at start about a key file that others than its owner may read', async () => {
    const dir = join(tempDir(), 'keys');
    expect(await runKeys(['generate', dir], { stdout: capture().stream, stderr: capture().stream })).toBe(0);
    chmodSync(join(dir, 'token-key.pem'), 0o644);
    const yaml = `keys: { signing_key_file: ${dir}/signing-key.sec, token_key_file: ${dir}/token-key.pem }\n`;
    const server = await startTestServer({ yaml });
    try {
      const warnings = server.logs.filter((line) => line.includes('key file is readable'));
      expect(warnings.map((line) => (JSON.parse(line) as { file: string }).file)).toEqual([
        join(dir, 'token-key.pem'),
      ]);
    } finally {
      await server.close();
    }
  });
});
