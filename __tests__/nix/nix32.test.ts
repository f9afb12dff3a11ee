import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Hash, HashError, type HashAlgorithm } from '../../src/nix/hash.js';
import { decodeNix32, encodeNix32, Nix32Error, nix32Length } from '../../src/nix/nix32.js';
import { nix } from '../support/nix.js';

const ALGORITHMS: [HashAlgorithm, number][] = [
  ['md5', 16],
  ['sha1', 20],
  ['sha256', 32],
  ['sha512', 64],
];

const lines = (text: string) => text.trim().split('\n');

describe('nix32 and hash formats against Nix', () => {
  it.each(ALGORITHMS)(
    '%s: our nix32, base16 and SRI are what Nix converts to, both ways',
    async (algorithm, size) => {
      const hashes = Array.from({ length: 8 }, () => new Hash(algorithm, randomBytes(size)));
      hashes.push(new Hash(algorithm, Buffer.alloc(size)), new Hash(algorithm, Buffer.alloc(size, 0xff)));
      const base16 = hashes.map((h) => h.base16);

      // base16 → Nix → nix32 equals ours; our nix32 → Nix → base16 equals the digest.
      expect(lines(await nix('nix-hash', ['--type', algorithm, '--to-base32', ...base16]))).toEqual(
        hashes.map((h) => h.nix32),
      );
      expect(
        lines(await nix('nix-hash', ['--type', algorithm, '--to-base16', ...hashes.map((h) => h.nix32)])),
      ).toEqual(base16);
      expect(lines(await nix('nix', ['hash', 'to-sri', '--type', algorithm, ...base16]))).toEqual(
        hashes.map((h) => h.toSRI()),
      );
      // Nix reads our prefixed forms, and we read what Nix writes.
      const sri = lines(await nix('nix', ['hash', 'to-sri', ...hashes.map((h) => h.toString())]));
      expect(sri).toEqual(hashes.map((h) => h.toSRI()));
      const fromNix32 = lines(await nix('nix', ['hash', 'to-base16', ...sri]));
      expect(fromNix32).toEqual(base16);
      const nix32 = lines(await nix('nix', ['hash', 'to-base32', ...hashes.map((h) => h.toBase16String())]));
      for (const [i, text] of nix32.entries()) {
        expect(Hash.parse(text, algorithm).equals(hashes[i]!)).toBe(true);
        expect(Hash.parse(`${algorithm}:${text}`).equals(hashes[i]!)).toBe(true);
        expect(Hash.parse(sri[i]!).equals(hashes[i]!)).toBe(true);
        expect(Hash.parse(hashes[i]!.toBase16String()).equals(hashes[i]!)).toBe(true);
        expect(Hash.parse(`${algorithm}:${hashes[i]!.base64}`).equals(hashes[i]!)).toBe(true);
      }
    },
  );

  it('refuses the nix32 strings Nix refuses, naming the problem', async () => {
    const valid = new Hash('sha256', randomBytes(32)).nix32;
    const bad: [string, RegExp][] = [
      [`e${valid.slice(1)}`, /is not a valid sha256 hash/],
      [valid.slice(1), /is not a valid sha256 hash/],
      // The first of 52 digits carries 1 bit of 256: 'z' sets the 4 that do not exist.
      [`z${valid.slice(1)}`, /bits beyond 32 bytes/],
    ];
    for (const [text, message] of bad) {
      await expect(nix('nix-hash', ['--type', 'sha256', '--to-base16', text])).rejects.toThrow(
        /invalid|hash/,
      );
      const error = (() => {
        try {
          Hash.parse(`sha256:${text}`);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(HashError);
      expect((error as Error).message).toMatch(message);
    }
  });
});

describe('Hash parsing', () => {
  it('checks the algorithm it was asked for, in every form', () => {
    const h = Hash.of('sha256', 'x');
    expect(() => Hash.parse(h.toSRI(), 'sha1')).toThrow("expected a sha1 hash, got 'sha256-");
    expect(() => Hash.parse(h.toString(), 'sha512')).toThrow(/expected a sha512 hash/);
    expect(() => Hash.parse(h.nix32)).toThrow(/does not name its algorithm/);
    expect(() => Hash.parse(`blake3:${h.nix32}`)).toThrow("unknown hash algorithm 'blake3'");
    expect(Hash.parse(h.base16.toUpperCase(), 'sha256').equals(h)).toBe(true);
  });

  it('refuses base64 with stray bits, which Node would silently decode', () => {
    const h = Hash.of('sha256', 'x');
    const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    // 43 base64 digits carry 258 bits for 256: the last digit's low 2 bits must be zero.
    const last = h.base64.at(-2)!;
    const twisted = `${h.base64.slice(0, -2)}${b64[b64.indexOf(last) ^ 1]}=`;
    expect(Buffer.from(twisted, 'base64').equals(h.digest)).toBe(true);
    expect(() => Hash.parse(`sha256-${twisted}`)).toThrow(/is not a valid sha256 hash/);
    expect(() => Hash.parse(`sha256:${twisted}`)).toThrow(/is not a valid sha256 hash/);
  });
});

describe('nix32 properties', () => {
  it('decode(encode(bytes)) == bytes for any length, and encode uses only the alphabet', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const text = encodeNix32(bytes);
        expect(text).toHaveLength(nix32Length(bytes.length));
        expect(text).toMatch(/^[0-9abcdfghijklmnpqrsvwxyz]*$/);
        expect(decodeNix32(text, bytes.length).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
  });

  it('encode(decode(text)) == text for every valid sha256 nix32 string', () => {
    const digit = fc.constantFrom(...'0123456789abcdfghijklmnpqrsvwxyz');
    const lead = fc.constantFrom('0', '1'); // 52 digits hold 260 bits: the first carries 1 of 256
    fc.assert(
      fc.property(lead, fc.array(digit, { minLength: 51, maxLength: 51 }), (first, rest) => {
        const text = first + rest.join('');
        expect(encodeNix32(decodeNix32(text, 32))).toBe(text);
      }),
    );
  });

  it('refuses characters outside the alphabet', () => {
    fc.assert(
      fc.property(fc.constantFrom(...'eotuEOTU-_/ '), fc.nat({ max: 51 }), (c, at) => {
        const text = '0'.repeat(at) + c + '0'.repeat(51 - at);
        expect(() => decodeNix32(text, 32)).toThrow(Nix32Error);
      }),
    );
  });
});
