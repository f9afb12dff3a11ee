/**
 * The server's signature on stored narinfos. Parsing, fingerprinting and ed25519-signing cost more
 * than the rest of a narinfo GET together, so a narinfo is signed once, as it is stored, and the
 * record keeps the public key that signed it. Reads serve the stored text as it is.
 *
 * A record signed by another key (the signing key was replaced) or by none (stored before
 * signatures were) is signed when read, as every read once was: those results are kept, bounded,
 * oldest first out, so a closure asked for by every job is signed once per key.
 */
import { parseNarInfo, serializeNarInfo, type NarInfo } from '../../nix/narinfo.js';
import { narInfoFingerprint, signFingerprint, type SecretKey } from '../../nix/signing.js';
import type { NarInfoRecord } from '../storage/metadata-store.js';

/** About 1 KiB each (stored text as the key, signed text as the value). */
export const SIGNED_NARINFO_CACHE_SIZE = 10_000;

export class NarInfoSigner {
  private readonly signed = new Map<string, string>();

  constructor(
    private readonly key: SecretKey,
    private readonly capacity = SIGNED_NARINFO_CACHE_SIZE,
  ) {}

  /** The public key this signer signs for, as records name it. */
  get publicKey(): string {
    return this.key.publicKey.text;
  }

  /** A narinfo (parsed once, by the upload) as it is to be stored: signed now, with the key that signed it. */
  signForStorage(info: NarInfo): { narinfo: string; signedBy: string } {
    const narinfo = serializeNarInfo({
      ...info,
      sigs: [signFingerprint(narInfoFingerprint(info), this.key)],
    });
    return { narinfo, signedBy: this.publicKey };
  }

  /** What to serve for a record: its stored text when this key signed it, else signed now. */
  served(record: NarInfoRecord): string {
    return record.signedBy === this.publicKey ? record.narinfo : this.sign(record.narinfo);
  }

  /** The stored narinfo with the server's signature in place of any other. */
  sign(stored: string): string {
    let body = this.signed.get(stored);
    if (body === undefined) {
      const info = parseNarInfo(stored);
      body = serializeNarInfo({ ...info, sigs: [signFingerprint(narInfoFingerprint(info), this.key)] });
      if (this.signed.size >= this.capacity) this.signed.delete(this.signed.keys().next().value!);
      this.signed.set(stored, body);
    }
    return body;
  }
}
