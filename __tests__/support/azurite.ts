/**
 * The real Azurite (Microsoft's Azure Storage emulator) as the blob store behind the Actions cache
 * service's signed URLs. Each test file gets its own port (10100-10102) and data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';

const REPO = resolve(import.meta.dirname, '..', '..');
/** Azurite's well-known development account. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface Azurite {
  port: number;
  url: string;
  credential: StorageSharedKeyCredential;
  service: BlobServiceClient;
  /** Stops the process (the data stays): "Azurite down". */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolvePromise(true)));
    socket.once('error', () => resolvePromise(false));
  });
}

/**
 * Azurite's port for one test file: SLUICE_TEST_AZURITE_PORT (default 10100) plus the file's offset,
 * so that two checkouts testing on one machine can keep apart.
 */
export function azuritePort(offset: number): number {
  return Number(process.env.SLUICE_TEST_AZURITE_PORT ?? 10100) + offset;
}

export async function startAzurite(port: number): Promise<Azurite> {
  const location = mkdtempSync(join(tmpdir(), 'sluice-azurite-'));
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    if (await listening(port)) throw new Error(`port ${port} is taken: is another Azurite running?`);
    child = spawn(
      join(REPO, 'node_modules', '.bin', 'azurite-blob'),
      [
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        String(port),
        '--location',
        location,
        '--silent',
        '--skipApiVersionCheck',
        '--loose',
        '--disableTelemetry',
      ],
      { stdio: 'ignore' },
    );
    // A test process that dies without its afterAll must not leave Azurite holding the port.
    const running = child;
    process.once('exit', () => running.kill());
    const deadline = Date.now() + 30_000;
    while (!(await listening(port))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('Azurite did not start');
      await sleep(100);
    }
  };
  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((r) => running.once('exit', r));
    running.kill('SIGTERM');
    await exited;
  };
  await start();
  const url = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  return {
    port,
    url,
    credential,
    service: new BlobServiceClient(url, credential),
    stop,
    start,
    close: async () => {
      await stop();
      rmSync(location, { recursive: true, force: true });
    },
  };
}
