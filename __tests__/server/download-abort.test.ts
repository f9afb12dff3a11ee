/**
 * Clients that leave in the middle of a NAR download, many at once: the server stops sending to
 * them and goes on answering others, with the NAR intact. (The write that fails while the next
 * chunk is read is kept from becoming an unhandled rejection, which would end the process: the
 * blob store contract's "a destination that closes midway" test hits that moment every time.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  pushRaw,
  startTestServer,
  type NarUpload,
  type TestServer,
} from '../support/server.js';

let server: TestServer;
let token: string;
let upload: NarUpload;

beforeAll(async () => {
  server = await startTestServer();
  token = await server.ciToken();
  const [path] = await nixBuild(randomChainExpr(1, 8 * 1024 * 1024));
  upload = await narUploadFor(path!);
  expect(await pushRaw(server.url, token, upload)).toEqual([201, 201]);
});
afterAll(async () => {
  await server?.close();
});

/** Asks for the NAR and resets the connection as soon as the first bytes of the answer arrive. */
function downloadAndLeave(): Promise<void> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () =>
      socket.write(
        `GET /${upload.narUrl} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      ),
    );
    socket.once('data', () => {
      socket.resetAndDestroy();
      resolve();
    });
    socket.once('error', () => resolve());
  });
}

describe('NAR downloads', () => {
  it('survive clients that leave midway, and the server goes on answering', async () => {
    for (let i = 0; i < 50; i++) await Promise.all([1, 2, 3, 4].map(downloadAndLeave));
    const whole = await fetch(`${server.url}/${upload.narUrl}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer()).equals(upload.nar)).toBe(true);
  });
});
