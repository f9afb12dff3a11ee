/**
 * The gate's secret checks, compared without a hash per request: only the job's exact secret
 * passes; a candidate of another length (shorter, longer, a prefix of the secret, the secret with
 * more after it) or of the same length with other bytes gets a 401, never an exception.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from '@jest/globals';
import { HttpError } from '../../src/contracts/http-error.js';
import { RequestGate } from '../../src/proxy/runtime/request-gate.js';

const auth = {
  cachePrefix: randomBytes(32).toString('base64url'),
  controlSecret: randomBytes(32).toString('base64url'),
};
const gate = new RequestGate(auth);
const secret = auth.cachePrefix;

/** The status the gate answers for a request path: 200 when it passes. */
function cacheStatus(path: string): number {
  try {
    gate.cachePath(path);
    return 200;
  } catch (e) {
    if (e instanceof HttpError) return e.status;
    throw e;
  }
}

function controlStatus(authorization: string | undefined): number {
  const req = { headers: authorization === undefined ? {} : { authorization } } as IncomingMessage;
  try {
    gate.checkControl(req);
    return 200;
  } catch (e) {
    if (e instanceof HttpError) return e.status;
    throw e;
  }
}

/** The secret with its character at `at` replaced by `by`. */
const replaced = (value: string, at: number, by: string) => value.slice(0, at) + by + value.slice(at + 1);

describe('RequestGate', () => {
  it('gives the route under the secret prefix, and the secret never goes further', () => {
    expect(gate.cachePath(`/${secret}/abc.narinfo`)).toBe('/abc.narinfo');
    expect(gate.cachePath(`/${secret}/nar/x.nar`)).toBe('/nar/x.nar');
  });

  it('refuses every other first segment with a 401', () => {
    const other = secret[0] === 'A' ? 'B' : 'A';
    const candidates = [
      '',
      secret.slice(0, -1),
      secret.slice(0, 8),
      `${secret}x`,
      `${secret}${secret}`,
      replaced(secret, 0, other),
      replaced(secret, secret.length - 1, secret.endsWith('A') ? 'B' : 'A'),
      // Same length in characters, one byte longer in UTF-8.
      replaced(secret, 5, 'é'),
      // Same length in UTF-8 bytes (two characters become one of two bytes).
      `${secret.slice(0, -2)}é`,
      auth.controlSecret,
    ];
    for (const candidate of candidates) {
      expect({ candidate, status: cacheStatus(`/${candidate}/abc.narinfo`) }).toEqual({
        candidate,
        status: 401,
      });
    }
    // The right secret but no route after it.
    expect(cacheStatus(`/${secret}`)).toBe(401);
    // The secret must be the whole first segment.
    expect(cacheStatus(`/x${secret}/abc.narinfo`)).toBe(401);
  });

  it('answers the same secret again after refusals (nothing of a candidate stays behind)', () => {
    expect(cacheStatus(`/${secret.slice(0, -1)}é/abc.narinfo`)).toBe(401);
    expect(cacheStatus(`/${secret}/abc.narinfo`)).toBe(200);
    expect(cacheStatus(`/${replaced(secret, 3, '-')}/abc.narinfo`)).toBe(secret[3] === '-' ? 200 : 401);
    expect(cacheStatus(`/${secret}/abc.narinfo`)).toBe(200);
  });

  it('lets control requests through with the control secret only', () => {
    const control = auth.controlSecret;
    expect(controlStatus(`Bearer ${control}`)).toBe(200);
    for (const header of [
      undefined,
      '',
      `Bearer ${control}x`,
      `Bearer ${control.slice(0, -1)}`,
      `Bearer ${replaced(control, 0, control[0] === 'A' ? 'B' : 'A')}`,
      `Bearer ${auth.cachePrefix}`,
      `Basic ${control}`,
    ]) {
      expect({ header, status: controlStatus(header) }).toEqual({ header, status: 401 });
    }
  });
});
