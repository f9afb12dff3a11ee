import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packKeys } from '../../src/action/gha-cache/keys.js';
import {
  parseDrainTimeout,
  parseKey,
  parseListen,
  parsePin,
  parseRegex,
  parseSeconds,
  parseServer,
  parseSize,
  parseUrls,
} from '../../src/action/inputs.js';
import { isLoopbackAddress as isLoopbackHost } from '../../src/contracts/listen.js';

describe('input parsing', () => {
  it('takes pin and pin-ttl, naming the bad one', () => {
    expect(parsePin('', '')).toBeUndefined();
    expect(parsePin(' v1.2 ', '')).toEqual({ name: 'v1.2' });
    expect(parsePin('v1.2', '1y')).toEqual({ name: 'v1.2', ttl: '1y' });
    expect(() => parsePin('a b', '')).toThrow("Input 'pin' must be 1-100 letters");
    expect(() => parsePin('v1', 'a year')).toThrow("Input 'pin-ttl' must be a duration");
    expect(() => parsePin('', '1y')).toThrow("Input 'pin-ttl' needs 'pin'");
  });

  it('takes a loopback listen address, port 0 included, and refuses anything else by name', () => {
    expect(parseListen('127.0.0.1:37515')).toEqual({ host: '127.0.0.1', port: 37515 });
    expect(parseListen('[::1]:0')).toEqual({ host: '[::1]', port: 0 });
    expect(() => parseListen('0.0.0.0:37515')).toThrow("Input 'listen' must be a loopback address");
    expect(() => parseListen('127.0.0.1:70000')).toThrow("Input 'listen' must be host:port");
    expect(() => parseListen('37515')).toThrow("Input 'listen' must be host:port");
  });

  it('normalises the server URL and refuses credentials in it', () => {
    expect(parseServer('https://cache.example.com').href).toBe('https://cache.example.com/');
    expect(parseServer('https://example.com/sluice').href).toBe('https://example.com/sluice/');
    expect(() => parseServer('cache.example.com')).toThrow("Input 'server' must be an http(s) URL");
    expect(() => parseServer('ftp://cache.example.com')).toThrow("got protocol 'ftp:'");
    expect(() => parseServer('https://u:p@cache.example.com')).toThrow('must not carry credentials');
  });

  it('refuses plain-http servers except on loopback', () => {
    for (const host of ['127.0.0.1', '127.8.9.10', '[::1]', 'localhost']) {
      expect(parseServer(`http://${host}:8080`).protocol).toBe('http:');
    }
    expect(isLoopbackHost('127.0.0.1.example.com')).toBe(false);
    for (const url of ['http://cache.example.com', 'http://10.0.0.5:8080', 'http://127.0.0.1.example.com']) {
      expect(() => parseServer(url)).toThrow("Input 'server' must be an https:// URL");
    }
    expect(parseServer('https://cache.example.com').protocol).toBe('https:');
  });

  it('splits upstream caches on any whitespace; empty means none', () => {
    expect(parseUrls('upstream-caches', ' https://a.example/\n  https://b.example ')).toEqual([
      'https://a.example',
      'https://b.example',
    ]);
    expect(parseUrls('upstream-caches', '')).toEqual([]);
    expect(() => parseUrls('upstream-caches', 'https://a.example not-a-url')).toThrow(
      "'not-a-url' is not one",
    );
  });

  it('checks the push filter compiles and seconds are non-negative numbers', () => {
    expect(parseRegex('push-filter', '-source$')).toBe('-source$');
    expect(parseRegex('push-filter', '  ')).toBeUndefined();
    expect(() => parseRegex('push-filter', '(')).toThrow(
      "Input 'push-filter' is not a valid regular expression",
    );
    expect(parseSeconds('drain-timeout', '90')).toBe(90);
    expect(() => parseSeconds('drain-timeout', '-1')).toThrow(
      "Input 'drain-timeout' must be a number of seconds",
    );
    expect(() => parseSeconds('drain-timeout', 'soon')).toThrow("got 'soon'");
  });

  it('refuses a drain-timeout the daemon would refuse (the post step would push nothing)', () => {
    expect(parseDrainTimeout('21600')).toBe(21_600);
    expect(() => parseDrainTimeout('21601')).toThrow(
      "Input 'drain-timeout' must be at most 21600 seconds (6 hours); got '21601'.",
    );
    expect(() => parseDrainTimeout('1e9')).toThrow("Input 'drain-timeout' must be at most");
  });
});

describe('GitHub cache mode inputs and keys', () => {
  it('reads sizes with binary and decimal units, and refuses anything else by name', () => {
    expect(parseSize('max-pack-size', '5GiB')).toBe(5 * 1024 ** 3);
    expect(parseSize('max-pack-size', '500 MiB')).toBe(500 * 1024 ** 2);
    expect(parseSize('max-pack-size', '1GB')).toBe(1e9);
    expect(parseSize('max-pack-size', '1234')).toBe(1234);
    expect(() => parseSize('max-pack-size', 'lots')).toThrow("Input 'max-pack-size' must be a size");
    expect(() => parseKey('a,b')).toThrow("Input 'key' must be at most 100");
    expect(parseKey(' linux-gcc ')).toBe('linux-gcc');
  });

  it("asks for the job's own ref first, then the base branch, then the default branch", () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-keys-'));
    const event = join(dir, 'event.json');
    writeFileSync(event, JSON.stringify({ repository: { default_branch: 'trunk' } }));
    const env = {
      RUNNER_OS: 'Linux',
      RUNNER_ARCH: 'X64',
      GITHUB_RUN_ID: '7',
      GITHUB_RUN_ATTEMPT: '2',
      GITHUB_EVENT_PATH: event,
    };
    const pr = packKeys({ ...env, GITHUB_REF: 'refs/pull/4/merge', GITHUB_BASE_REF: 'release' }, 'gcc');
    expect(pr.saveKey).toBe('sluice-pack-v1:Linux:X64:gcc:refs/pull/4/merge:7-2');
    expect(pr.restoreKeys).toEqual([
      'sluice-pack-v1:Linux:X64:gcc:refs/pull/4/merge:',
      'sluice-pack-v1:Linux:X64:gcc:refs/heads/release:',
      'sluice-pack-v1:Linux:X64:gcc:refs/heads/trunk:',
    ]);
    // On the default branch itself, one prefix; and no ref's prefix is another's (':' ends it).
    const main = packKeys({ ...env, GITHUB_REF: 'refs/heads/trunk' }, '');
    expect(main.restoreKeys).toEqual(['sluice-pack-v1:Linux:X64::refs/heads/trunk:']);
    expect(
      packKeys({ ...env, GITHUB_REF: 'refs/heads/trunk-2' }, '').saveKey.startsWith(main.restoreKeys[0]!),
    ).toBe(false);
  });
});
