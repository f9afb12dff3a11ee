/**
 * Issue 19 finding 9: a claim with tab and newline characters must not forge `sluice audit` rows.
 * A real exchange and push store the claims; `sluice audit` prints one row per accepted write.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { PassThrough } from 'node:stream';
import { runAudit } from '../../src/cli/audit-command.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { narUploadFor, pushRaw, startTestServer, type TestServer } from '../support/server.js';

// A workflow name that, printed raw, ends its row and adds a fake write by acme/release.
const FORGED =
  'CI\t-\t-\n2026-01-01T00:00:00.000Z\tacme/release\t/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-fake\t1\t1\tacme/release\trefs/heads/main\tRelease';

let server: TestServer;

async function audit(args: string[]): Promise<string> {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  expect(await runAudit(['--data', server.dataDir, ...args], { stdout, stderr: new PassThrough() })).toBe(0);
  return Buffer.concat(chunks).toString('utf8');
}

beforeAll(async () => {
  server = await startTestServer();
  const upload = await narUploadFor((await nixBuild(randomChainExpr(1, 200)))[0] as string);
  const token = await server.ciToken({ workflow: FORGED, ref: 'refs/heads/main\r\x1b[2Kforged' });
  expect(await pushRaw(server.url, token, upload)).toEqual([201, 201]);
});
afterAll(async () => {
  await server?.close();
});

describe('claims with control characters', () => {
  it('stay one field of one row in the tab-separated audit', async () => {
    const lines = (await audit([])).split('\n').filter(Boolean);
    expect(lines).toHaveLength(2); // the header and the one write
    const header = (lines[0] as string).split('\t');
    const row = (lines[1] as string).split('\t');
    expect(row).toHaveLength(header.length);
    expect(row[header.indexOf('slice')]).toBe('acme/app');
    expect(row[header.indexOf('workflow')]).toBe(
      'CI\\u0009-\\u0009-\\u000a2026-01-01T00:00:00.000Z\\u0009acme/release' +
        '\\u0009/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-fake\\u00091\\u00091\\u0009acme/release' +
        '\\u0009refs/heads/main\\u0009Release',
    );
    expect(row[header.indexOf('ref')]).toBe('refs/heads/main\\u000d\\u001b[2Kforged');
  });

  it('are stored escaped, so JSON output and any other reader get no control characters either', async () => {
    const records = (await audit(['--json']))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, string>);
    expect(records).toHaveLength(1);
    // eslint-disable-next-line no-control-regex
    expect(Object.values(records[0] as object).join('')).not.toMatch(/[\u0000-\u001f]/);
  });

  it('a row stored raw by an older version is escaped when printed', async () => {
    const db = new DatabaseSync(join(server.dataDir, 'sluice.db'));
    db.prepare(
      `INSERT INTO audit (time, slice, store_path, nar_size, file_size, workflow) VALUES (?, ?, ?, ?, ?, ?)`,
    ).run(Date.now(), 'acme/app', '/nix/store/x', 1, 1, FORGED);
    db.close();
    const lines = (await audit(['--since', '1h'])).split('\n').filter(Boolean);
    expect(lines).toHaveLength(3);
    expect((lines[2] as string).split('\t')).toHaveLength((lines[0] as string).split('\t').length);
  });
});
