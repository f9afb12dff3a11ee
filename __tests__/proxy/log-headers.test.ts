import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { forwardableHeaders } from '../../src/proxy/pull/response-headers.js';
import { createLogger, Secrets } from '../../src/proxy/report/daemon-log.js';

describe('log redaction', () => {
  it('scrubs every registered secret from every line, wherever it hides', () => {
    let out = '';
    const sink = new Writable({
      write(chunk, _encoding, done) {
        out += String(chunk);
        done();
      },
    });
    const secrets = new Secrets();
    const log = createLogger(secrets, sink);
    secrets.add('first-secret-token');
    secrets.add('later"quoted\\token');
    secrets.add('short');
    log.info({ header: 'Bearer first-secret-token' }, 'request');
    log.warn({ err: new Error('boom with later"quoted\\token inside').message }, 'failed first-secret-token');
    log.info('a short word stays');
    expect(out).not.toContain('first-secret-token');
    expect(out).not.toContain('later');
    expect(out.match(/\[REDACTED\]/g)).toHaveLength(3);
    expect(out).toContain('a short word stays');
    for (const line of out.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  });
});

describe('forwardableHeaders', () => {
  it('drops hop-by-hop headers and those the Connection header names', () => {
    expect(
      forwardableHeaders({
        'Content-Type': 'application/x-nix-nar',
        'content-length': '10',
        connection: 'keep-alive, X-Private',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'x-private': 'secret',
        etag: '"abc"',
        undefinedValue: undefined,
      }),
    ).toEqual({ 'content-type': 'application/x-nix-nar', 'content-length': '10', etag: '"abc"' });
  });
});
