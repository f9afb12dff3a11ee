import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, SignJWT, UnsecuredJWT } from 'jose';
import { parseConfig } from '../../../src/server/config/server-config.js';
import { createExchange, loadOrCreateTokenKey, type Exchange } from '../../../src/server/exchange/index.js';
import {
  CACHE_TOKEN_AUDIENCE,
  CACHE_TOKEN_ISSUER,
  createCacheTokens,
} from '../../../src/server/exchange/cache-token.js';
import { startOidcIssuer, type OidcIssuer } from '../../support/oidc-issuer.js';
import { configYaml, expectHttpError, newTokenKey } from './setup.js';

describe('cache tokens', () => {
  let issuer: OidcIssuer;
  const tokenKey = newTokenKey();
  let exchange: Exchange;
  beforeAll(async () => {
    issuer = await startOidcIssuer();
    exchange = createExchange(parseConfig(configYaml(issuer, 'token_ttl: 15m\n')), tokenKey);
  });
  afterAll(() => issuer.close());

  it('live token_ttl, then expire with 401', async () => {
    const { token, expiresAt } = await exchange.exchange(await issuer.sign());
    const claims = decodeJwt(token);
    expect((claims.exp as number) - (claims.iat as number)).toBe(15 * 60);
    expect(expiresAt.getTime()).toBe((claims.exp as number) * 1000);
    const config = parseConfig(configYaml(issuer));
    const later = createExchange(config, tokenKey, { now: () => expiresAt.getTime() + 1000 });
    await expectHttpError(later.verifyCacheToken(token), 401, /^cache token: expired$/);
    const justBefore = createExchange(config, tokenKey, { now: () => expiresAt.getTime() - 1000 });
    expect((await justBefore.verifyCacheToken(token)).write).toBe('acme/app');
  });

  it('remembers a verified token only until its expiry, and only that exact token', async () => {
    let clock = Date.now();
    const tokens = createCacheTokens(tokenKey, () => clock);
    const grant = { kind: 'read' as const, read: ['acme/app'], write: null, identity: { name: 'x' } };
    const { token, expiresAt } = await tokens.issue(grant, 60);
    expect((await tokens.verify(token)).read).toEqual(['acme/app']);
    expect((await tokens.verify(token)).read).toEqual(['acme/app']); // now from the cache
    const [header, , signature] = token.split('.') as [string, string, string];
    const widened = Buffer.from(JSON.stringify({ ...decodeJwt(token), read: ['*'] })).toString('base64url');
    await expectHttpError(tokens.verify(`${header}.${widened}.${signature}`), 401, /bad signature/);
    clock = expiresAt.getTime();
    await expectHttpError(tokens.verify(token), 401, /^cache token: expired$/);
  });

  it('refuses forged and foreign tokens with 401 naming the reason', async () => {
    const { token, grant, expiresAt } = await exchange.exchange(await issuer.sign());
    const payload = { ...decodeJwt(token) };
    const [header, , signature] = token.split('.') as [string, string, string];
    const widened = Buffer.from(JSON.stringify({ ...payload, read: ['*'], write: 'other/app' })).toString(
      'base64url',
    );
    const publicPem = createPublicKey(tokenKey).export({ type: 'spki', format: 'pem' }) as string;
    const sign = (claims: Record<string, unknown>, key = tokenKey) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' }).sign(key);
    const forgeries: [string, Promise<string> | string, RegExp][] = [
      ['alg none', new UnsecuredJWT(payload).encode(), /signing algorithm not allowed/],
      [
        'HS256 keyed with our public key',
        new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(publicPem)),
        /signing algorithm not allowed/,
      ],
      ['another ed25519 key', sign(payload, generateKeyPairSync('ed25519').privateKey), /bad signature/],
      ['widened claims under the original signature', `${header}.${widened}.${signature}`, /bad signature/],
      ['another issuer', sign({ ...payload, iss: 'evil' }), /wrong issuer/],
      ['another audience', sign({ ...payload, aud: 'elsewhere' }), /wrong audience/],
      ['a read token that writes', sign({ ...payload, kind: 'read' }), /malformed claims/],
      ['a CI ID token', issuer.sign(), /signing algorithm not allowed/],
      ['garbage', 'garbage', /malformed token/],
    ];
    for (const [name, forged, message] of forgeries) {
      const error = await expectHttpError(exchange.verifyCacheToken(await forged), 401, message);
      expect([name, error.message.startsWith('cache token: ')]).toEqual([name, true]);
    }
    expect(await exchange.verifyCacheToken(token)).toEqual({
      ...grant,
      expiresAt: expiresAt.getTime() / 1000,
    });
  });

  it('makes read tokens that can read but never write', async () => {
    const { token, expiresAt } = await exchange.createReadToken({
      read: ['acme/*', 'OSS/Tools'],
      ttlSeconds: 86400,
      name: 'laptop',
    });
    expect(await exchange.verifyCacheToken(token)).toEqual({
      kind: 'read',
      read: ['acme/*', 'oss/tools'],
      write: null,
      bindWrite: false,
      identity: { name: 'laptop' },
      issued: { id: expect.any(String), at: expect.any(Number) },
      expiresAt: expiresAt.getTime() / 1000,
    });
    expect(Math.round((expiresAt.getTime() - Date.now()) / 1000 / 3600)).toBe(24);
    const tokens = createCacheTokens(tokenKey);
    await expect(
      tokens.issue({ kind: 'read', read: ['a'], write: 'a', identity: { name: 'x' } }, 60),
    ).rejects.toThrow('a read token cannot write');
    await expect(exchange.createReadToken({ read: ['../etc'], ttlSeconds: 60, name: 'x' })).rejects.toThrow(
      `'../etc' is not a slice name or pattern`,
    );
    await expect(exchange.createReadToken({ read: [], ttlSeconds: 60, name: 'x' })).rejects.toThrow(
      'at least one slice',
    );
    await expect(exchange.createReadToken({ read: ['a'], ttlSeconds: 0, name: 'x' })).rejects.toThrow(
      'positive',
    );
    await expect(exchange.createReadToken({ read: ['a'], ttlSeconds: 60, name: 'bad name' })).rejects.toThrow(
      'token name',
    );
  });

  it('signs with our issuer and audience only', async () => {
    const { token } = await exchange.createReadToken({
      read: ['acme/app'],
      ttlSeconds: 60,
      name: 'ci-debug',
    });
    expect(decodeJwt(token)).toMatchObject({
      iss: CACHE_TOKEN_ISSUER,
      aud: CACHE_TOKEN_AUDIENCE,
      sub: 'read:ci-debug',
      kind: 'read',
    });
    expect(typeof decodeJwt(token).jti).toBe('string');
  });
});

describe('the token key', () => {
  it('is created once with mode 0600 and reloaded: tokens survive a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-token-key-'));
    const path = join(dir, 'data', 'token-key.pem');
    const first = await loadOrCreateTokenKey(path);
    expect(first.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const second = await loadOrCreateTokenKey(path);
    expect(second.created).toBe(false);
    const config = parseConfig('');
    const { token } = await createExchange(config, first.key).createReadToken({
      read: ['a/b'],
      ttlSeconds: 60,
      name: 'x',
    });
    expect((await createExchange(config, second.key).verifyCacheToken(token)).read).toEqual(['a/b']);
    expect(readFileSync(path, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('refuses a key file that is not an ed25519 private key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-token-key-'));
    const path = join(dir, 'token-key.pem');
    writeFileSync(
      path,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    await expect(loadOrCreateTokenKey(path)).rejects.toThrow('must be an ed25519 private key');
  });
});
