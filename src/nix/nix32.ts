/**
 * Nix's base-32 encoding ("nix32"): a custom alphabet without e, o, t, u, and the bytes read from
 * the end, so the first character carries the most significant bits of the last byte.
 */
export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

/** One nix32 character, as a regular-expression class. */
export const NIX32_CLASS = `[${NIX32_ALPHABET}]`;

const DIGIT_OF = new Map([...NIX32_ALPHABET].map((c, i) => [c, i]));

/** Length in characters of the nix32 form of `byteLength` bytes. */
export function nix32Length(byteLength: number): number {
  return Math.ceil((byteLength * 8) / 5);
}

export function encodeNix32(bytes: Uint8Array): string {
  const length = nix32Length(bytes.length);
  let out = '';
  for (let n = length - 1; n >= 0; n--) {
    const bit = n * 5;
    const i = bit >> 3;
    const j = bit & 7;
    const low = bytes[i]! >> j;
    const high = i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0;
    out += NIX32_ALPHABET[(low | high) & 0x1f];
  }
  return out;
}

export class Nix32Error extends Error {}

export function decodeNix32(text: string, byteLength = Math.floor((text.length * 5) / 8)): Buffer {
  if (text.length !== nix32Length(byteLength)) {
    throw new Nix32Error(`nix32 string of ${text.length} characters cannot hold ${byteLength} bytes`);
  }
  const bytes = Buffer.alloc(byteLength);
  for (let n = 0; n < text.length; n++) {
    const c = text[text.length - n - 1]!;
    const digit = DIGIT_OF.get(c);
    if (digit === undefined) throw new Nix32Error(`invalid character '${c}' in nix32 string`);
    const bit = n * 5;
    const i = bit >> 3;
    const j = bit & 7;
    bytes[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < byteLength) bytes[i + 1]! |= carry;
    else if (carry !== 0) throw new Nix32Error(`nix32 string has bits beyond ${byteLength} bytes`);
  }
  return bytes;
}

export function isNix32(text: string): boolean {
  for (const c of text) if (!DIGIT_OF.has(c)) return false;
  return true;
}
