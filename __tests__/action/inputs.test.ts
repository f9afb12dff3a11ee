import { describe, expect, it } from '@jest/globals';
import {
  parseListen,
  parsePin,
  parseRegex,
  parseSeconds,
  parseServer,
  parseUrls,
} from '../../src/action/inputs.js';
import { isLoopbackHost } from '../../src/action/nix-conf-values.js';

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
});
