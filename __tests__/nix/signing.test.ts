import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hash } from '../../src/nix/hash.js';
import { parseNarInfo, serializeNarInfo } from '../../src/nix/narinfo.js';
import {
  fingerprint,
  generateSecretKey,
  KeyError,
  narInfoFingerprint,
  parsePublicKey,
  parseSecretKey,
  signFingerprint,
  verifyFingerprint,
  type SecretKey,
} from '../../src/nix/signing.js';
import { nix, nixBuild, randomChainExpr } from '../support/nix.js';
import {
  copyToFileCache,
  hashPartOf,
  pathInfo,
  readNarInfos,
  type PathInfoJson,
  removeFileCaches,
  substituteIntoFreshStore,
} from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-signing-'));
let chain: string[] = []; // [bottom, top]; top refers to bottom
let nixSecret = '';
let nixPublic = '';

beforeAll(async () => {
  const [top] = await nixBuild(randomChainExpr(2, 1024));
  chain = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
  await nix('nix-store', ['--generate-binary-cache-key', 'nix-made-1', join(dir, 'sk'), join(dir, 'pk')]);
  nixSecret = readFileSync(join(dir, 'sk'), 'utf8');
  nixPublic = readFileSync(join(dir, 'pk'), 'utf8');
});

afterAll(async () => {
  removeFileCaches();
  rmSync(dir, { recursive: true, force: true });
  await nix('nix-store', ['--delete', ...[...chain].reverse()]).catch(() => undefined);
});

const fingerprintOf = (pi: PathInfoJson) =>
  fingerprint(
    pi.path,
    Hash.parse(pi.narHash),
    pi.narSize,
    pi.references.map((r) => r.slice('/nix/store/'.length)),
  );

describe('keys made by nix-store --generate-binary-cache-key', () => {
  it('load as secret and public keys that belong together', () => {
    const secret = parseSecretKey(nixSecret);
    const pub = parsePublicKey(nixPublic);
    expect(secret.name).toBe('nix-made-1');
    expect(pub.name).toBe('nix-made-1');
    expect(secret.publicKey.text).toBe(nixPublic.trim());
    expect(secret.text).toBe(nixSecret.trim());
    const sig = signFingerprint('1;x', secret);
    expect(verifyFingerprint('1;x', sig, [pub])).toBe(true);
  });

  it('refuse malformed key files, naming the problem', () => {
    const [name, b64] = nixSecret.trim().split(':') as [string, string];
    const raw = Buffer.from(b64, 'base64');
    expect(() => parseSecretKey(b64)).toThrow(KeyError);
    expect(() => parseSecretKey(b64)).toThrow(/must be 'name:base64'/);
    expect(() => parseSecretKey(`${name}:${raw.subarray(0, 32).toString('base64')}`)).toThrow(
      /must be 64 bytes, got 32/,
    );
    expect(() => parsePublicKey(`${name}:${raw.toString('base64')}`)).toThrow(/must be 32 bytes, got 64/);
    expect(() => parseSecretKey(`${name}:!!!`)).toThrow(/is not valid base64/);
    const mismatched = Buffer.concat([raw.subarray(0, 32), Buffer.alloc(32, 7)]);
    expect(() => parseSecretKey(`${name}:${mismatched.toString('base64')}`)).toThrow(
      /does not match the public key/,
    );
    expect(() => generateSecretKey('a:b')).toThrow(/must be non-empty and contain no ':'/);
  });
});

describe('signatures against Nix', () => {
  it('verifies what nix store sign made, and makes byte-identical signatures with the same key', async () => {
    await nix('nix', ['store', 'sign', '--key-file', join(dir, 'sk'), ...chain]);
    const infos = await pathInfo(chain, ['--sigs']);
    const secret = parseSecretKey(nixSecret);
    const pub = parsePublicKey(nixPublic);
    for (const pi of infos) {
      const nixSig = pi.signatures!.find((s) => s.startsWith('nix-made-1:'))!;
      const fp = fingerprintOf(pi);
      expect(verifyFingerprint(fp, nixSig, [pub])).toBe(true);
      expect(signFingerprint(fp, secret)).toBe(nixSig);
      // Any change to what is signed, or another key of the same name, fails verification.
      expect(verifyFingerprint(fp.replace(`;${pi.narSize};`, `;${pi.narSize + 1};`), nixSig, [pub])).toBe(
        false,
      );
      expect(verifyFingerprint(fp, nixSig, [generateSecretKey('nix-made-1').publicKey])).toBe(false);
      expect(verifyFingerprint(fp, nixSig, [generateSecretKey('other').publicKey, pub])).toBe(true);
    }
    expect(infos.find((pi) => pi.path === chain[1])!.references).toEqual([chain[0]]);
  });

  it('verifies the Sig lines nix copy writes with &secret-key=', async () => {
    const cache = await copyToFileCache(chain, `compression=none&secret-key=${join(dir, 'sk')}`);
    const pub = parsePublicKey(nixPublic);
    for (const text of readNarInfos(cache).values()) {
      const info = parseNarInfo(text);
      expect(info.sigs.length).toBeGreaterThan(0);
      for (const sig of info.sigs.filter((s) => s.startsWith('nix-made-1:'))) {
        expect(verifyFingerprint(narInfoFingerprint(info), sig, [pub])).toBe(true);
      }
    }
    rmSync(cache, { recursive: true, force: true });
  });

  it('signs the sorted, deduplicated reference set, as Nix does', () => {
    const refs = ['zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-b', '00000000000000000000000000000000-a'];
    const hash = Hash.of('sha256', 'nar');
    const fp = fingerprint('/nix/store/11111111111111111111111111111111-x', hash.toSRI(), 5, [
      ...refs,
      refs[0]!,
    ]);
    expect(fp).toBe(
      `1;/nix/store/11111111111111111111111111111111-x;${hash.toString()};5;` +
        '/nix/store/00000000000000000000000000000000-a,/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-b',
    );
  });
});

describe('a binary cache signed by our code', () => {
  /** Copies the chain to a file:// cache, then replaces every Sig line with `sign(info)`. */
  async function resignedCache(sign: (fp: string) => string[]): Promise<string> {
    const cache = await copyToFileCache(chain, `compression=zstd&secret-key=${join(dir, 'sk')}`);
    for (const [hashPart, text] of readNarInfos(cache)) {
      const info = parseNarInfo(text);
      writeFileSync(
        join(cache, `${hashPart}.narinfo`),
        serializeNarInfo({ ...info, sigs: sign(narInfoFingerprint(info)) }),
      );
    }
    return cache;
  }

  const substitute = (cache: string, publicKey: string) =>
    substituteIntoFreshStore(cache, publicKey, chain[1]!);

  let ours: SecretKey;
  beforeAll(() => {
    ours = generateSecretKey('sluice-test-1');
  });

  it('is accepted by nix-store -r with only our public key trusted', async () => {
    const cache = await resignedCache((fp) => [signFingerprint(fp, ours)]);
    expect(readFileSync(join(cache, `${hashPartOf(chain[1]!)}.narinfo`), 'utf8')).toMatch(
      /^Sig: sluice-test-1:/m,
    );
    expect(await substitute(cache, ours.publicKey.text)).toBe(chain[1]);
    rmSync(cache, { recursive: true, force: true });
  });

  it('is refused when a signature is tampered with, or made by an untrusted key', async () => {
    const tampered = await resignedCache((fp) => [signFingerprint(fp.replace(/;(\d+);/, ';9$1;'), ours)]);
    await expect(substitute(tampered, ours.publicKey.text)).rejects.toThrow(
      /is not signed by any of the keys in 'trusted-public-keys'/,
    );
    rmSync(tampered, { recursive: true, force: true });

    const stranger = generateSecretKey('sluice-test-1');
    const untrusted = await resignedCache((fp) => [signFingerprint(fp, stranger)]);
    await expect(substitute(untrusted, ours.publicKey.text)).rejects.toThrow(
      /is not signed by any of the keys in 'trusted-public-keys'/,
    );
    rmSync(untrusted, { recursive: true, force: true });
  });
});
