import { describe, expect, it } from '@jest/globals';
import { Hash } from '../../src/nix/hash.js';
import { parseNarInfo, serializeNarInfo } from '../../src/nix/narinfo.js';
import { generateSecretKey, narInfoFingerprint, verifyFingerprint } from '../../src/nix/signing.js';
import { NarInfoSigner } from '../../src/server/cache/narinfo-signer.js';

function storedNarInfo(name: string): string {
  const narHash = Hash.parse(`sha256:${'1'.repeat(52)}`);
  return serializeNarInfo({
    storePath: `/nix/store/${'a'.repeat(32)}-${name}`,
    url: `nar/${'0'.repeat(52)}.nar.zst`,
    compression: 'zstd',
    narHash,
    narSize: 1024,
    references: [],
    sigs: [`someone-else:${Buffer.alloc(64).toString('base64')}`],
    extra: [],
  });
}

describe('narinfo signer', () => {
  it('signs with the server key only, the same text whether computed or remembered', () => {
    const key = generateSecretKey('cache.example-1');
    const other = generateSecretKey('cache.example-1');
    const signer = new NarInfoSigner(key, 1);
    const [first, second] = [storedNarInfo('first'), storedNarInfo('second')];
    const signedFirst = signer.sign(first);
    for (const text of [signer.sign(second), signedFirst, signer.sign(first), signer.sign(first)]) {
      const info = parseNarInfo(text);
      expect(info.sigs).toHaveLength(1);
      expect(verifyFingerprint(narInfoFingerprint(info), info.sigs[0]!, [key.publicKey])).toBe(true);
      expect(verifyFingerprint(narInfoFingerprint(info), info.sigs[0]!, [other.publicKey])).toBe(false);
    }
    expect(signer.sign(first)).toBe(signedFirst);
    expect(parseNarInfo(signer.sign(second)).storePath).toMatch(/-second$/);
  });
});
