/** Operating the server: the audit log and `sluice audit`, metrics, logs without secrets, graceful shutdown. */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { runAudit } from '../../src/cli/audit-command.js';
import { serializeNarInfo } from '../../src/nix/narinfo.js';
import { VerifyPool } from '../../src/server/cache/verify-pool.js';
import { regularFileNar } from '../support/nar.js';
import { makeNixMachine, nix, nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  rawRequest,
  startTestServer,
  storedState,
  writeNetrc,
  type TestServer,
} from '../support/server.js';

let server: TestServer;
let token: string;
let closure: string[];

async function audit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk));
  stderr.on('data', (chunk: Buffer) => (err += chunk));
  const code = await runAudit(args, { stdout, stderr });
  return { code, stdout: out, stderr: err };
}

beforeAll(async () => {
  server = await startTestServer();
  token = await server.ciToken({ run_id: '777', sha: 'cafe'.repeat(10) });
  const machine = makeNixMachine();
  const [top] = await nixBuild(randomChainExpr(2, 500), machine);
  closure = (await nix('nix-store', ['-qR', top as string])).trim().split('\n').sort();
  await nix(
    'nix',
    [
      'copy',
      '--option',
      'netrc-file',
      writeNetrc(machine.dir, token),
      '--to',
      `${server.url}?compression=zstd`,
      top as string,
    ],
    {
      machine,
    },
  );
});
afterAll(async () => {
  await server?.close();
});

describe('audit', () => {
  it('records every accepted narinfo with the CI identity, and sluice audit filters it', async () => {
    const all = await audit(['--data', server.dataDir, '--json']);
    expect(all.code).toBe(0);
    const rows = all.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(rows.map((row) => row.store_path).sort()).toEqual(closure);
    expect(rows[0]).toMatchObject({
      slice: 'acme/app',
      repository: 'acme/app',
      ref: 'refs/heads/main',
      workflow: 'CI',
      run_id: '777',
      sha: 'cafe'.repeat(10),
    });
    expect(rows[0]?.nar_size).toEqual(expect.any(Number));

    const table = await audit(['--data', server.dataDir, '--slice', 'acme/app', '--since', '1h']);
    expect(table.stdout.split('\n')[0]).toBe(
      'time\tslice\tstore_path\tnar_size\tfile_size\trepository\tref\tworkflow\trun_id\tsha',
    );
    expect(table.stdout.trim().split('\n')).toHaveLength(closure.length + 1);
    expect((await audit(['--data', server.dataDir, '--slice', 'acme/other', '--json'])).stdout).toBe('');
    expect((await audit(['--data', server.dataDir, '--since', '2099-01-01', '--json'])).stdout).toBe('');

    const bad = await audit(['--data', server.dataDir, '--since', 'yesterday']);
    expect([bad.code, bad.stderr]).toEqual([
      1,
      expect.stringContaining("--since 'yesterday' is neither a date"),
    ]);
    const missing = await audit(['--data', `${server.dataDir}/nowhere`]);
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringContaining('no Sluice database at')]);
  });

  it('a narinfo the slice already has is accepted again without a second audit row', async () => {
    const count = async () =>
      (await audit(['--data', server.dataDir, '--json'])).stdout.trim().split('\n').length;
    const before = await count();
    const upload = await narUploadFor(closure[0] as string);
    const headers = { authorization: `Bearer ${token}` };
    expect(
      (await rawRequest(server.url, 'PUT', `/${upload.narUrl}`, { headers, body: upload.nar })).status,
    ).toBe(201);
    const again = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
      headers,
      body: serializeNarInfo(upload.narinfo),
    });
    expect(again.status).toBe(200); // 200, not 201: the slice had this path (zstd, from nix copy)
    expect(await count()).toBe(before);
  });
});

describe('metrics and logs', () => {
  it('GET /metrics counts requests by route and status, narinfo hits and misses, bytes, rejected uploads', async () => {
    await rawRequest(server.url, 'PUT', `/nar/${'0'.repeat(52)}.nar`, {
      headers: { authorization: `Bearer ${token}` },
      body: regularFileNar(Buffer.from('x')),
    });
    await fetch(`${server.url}/${'0'.repeat(32)}.narinfo`, { headers: { authorization: `Bearer ${token}` } });
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^sluice_http_requests_total\{route="narinfo",method="PUT",status="201"\} [1-9]/m);
    expect(text).toMatch(/^sluice_http_requests_total\{route="nar",method="PUT",status="400"\} [1-9]/m);
    expect(text).toMatch(/^sluice_narinfo_lookups_total\{result="miss"\} [1-9]/m);
    expect(text).toMatch(/^sluice_narinfo_lookups_total\{result="hit"\} /m);
    expect(text).toMatch(/^sluice_bytes_in_total [1-9]/m);
    expect(text).toMatch(/^sluice_rejected_uploads_total\{reason="file_hash_mismatch"\} 1$/m);
  });

  it('logs are JSON and never contain a token, whether it was good, forged or sent as Basic auth', async () => {
    const forged = `${token.slice(0, -4)}AAAA`;
    const basic = Buffer.from(`u:${token}`).toString('base64');
    await fetch(`${server.url}/${'0'.repeat(32)}.narinfo`, {
      headers: { authorization: `Bearer ${forged}` },
    });
    await fetch(`${server.url}/${'0'.repeat(32)}.narinfo`, { headers: { authorization: `Basic ${basic}` } });
    await fetch(`${server.url}/_api/v1/token`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    const logs = server.logs.join('');
    expect(logs).toContain('"route":"narinfo"'); // the requests were logged…
    for (const secret of [token, forged, basic, token.split('.')[2] as string])
      expect(logs).not.toContain(secret);
    for (const line of server.logs) expect(() => JSON.parse(line)).not.toThrow();
  });
});

describe('lookup logging', () => {
  it('logs narinfo hits and misses at debug only, a refused lookup at info', async () => {
    const missPath = `/${'1'.repeat(32)}.narinfo`;
    const refusedPath = `/${'2'.repeat(32)}.narinfo`;
    const miss = await fetch(`${server.url}${missPath}`, { headers: { authorization: `Bearer ${token}` } });
    expect(miss.status).toBe(404);
    const refused = await fetch(`${server.url}${refusedPath}`, {
      headers: { authorization: 'Bearer x.y.z' },
    });
    expect(refused.status).toBe(401);
    await new Promise((resolve) => setImmediate(resolve));
    const lines = server.logs.map((line) => JSON.parse(line) as { path?: string; level: number });
    expect(lines.filter((line) => line.path === missPath)).toEqual([]);
    expect(lines.filter((line) => line.path === refusedPath).map((line) => line.level)).toEqual([30]);
  });
});

describe('graceful shutdown', () => {
  it('close() lets an upload in flight finish, refuses new connections, then stops the verification threads', async () => {
    const verifiers = new VerifyPool({ threads: 1 });
    const own = await startTestServer({ verifiers });
    const writer = await own.ciToken();
    const upload = await narUploadFor(closure[0] as string);
    const { hostname, port } = new URL(own.url);
    const socket = connect(Number(port), hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    let response = '';
    socket.on('data', (chunk: Buffer) => (response += chunk));
    // Listened for from the start: the server may let the connection go before close() resolves
    // (it still stops the verification threads then).
    const socketClosed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(
      `PUT /${upload.narUrl} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${writer}\r\ncontent-length: ${upload.nar.length}\r\n\r\n`,
    );
    socket.write(upload.nar.subarray(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 100));
    // The upload's check is on a worker once the server reads the body.
    for (let waited = 0; verifiers.running === 0 && waited < 100; waited++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(verifiers.running).toBe(1);
    const closed = own.close();
    await expect(fetch(`${own.url}/nix-cache-info`)).rejects.toThrow();
    socket.write(upload.nar.subarray(10));
    await closed; // resolves only once the upload was answered and its connection let go
    await socketClosed;
    expect(response).toMatch(/^HTTP\/1\.1 201 /);
    expect(storedState(own.dataDir).files).toEqual([upload.narUrl.slice(4)]);
    expect(verifiers.running).toBe(0);
  });
});
