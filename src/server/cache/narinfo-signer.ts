/**
 * The server's signature on stored narinfos. Parsing, fingerprinting and ed25519-signing cost more
 * than the rest of a narinfo GET together, yet the signed text depends only on the stored text and
 * the one server key: so recent results are kept (every job asks for the same closures), bounded,
 * oldest first out.
 */
import { parseNarInfo, serializeNarInfo, type NarInfo } from '../../nix/narinfo.js';
import { narInfoFingerprint, signFingerprint, type SecretKey } from '../../nix/signing.js';

/** About 1 KiB each (stored text as the key, signed text as the value). */
export const SIGNED_NARINFO_CACHE_SIZE = 10_000;

export class NarInfoSigner {
  private readonly signed = new Map<string, string>();

  constructor(
    private readonly key: SecretKey,
    private readonly capacity = SIGNED_NARINFO_CACHE_SIZE,
  ) {}

  /** The stored narinfo with the server's signature in place of any other. */
  sign(stored: string): string {
    return this.signed.get(stored) ?? this.remember(stored, parseNarInfo(stored));
  }

  /** The text a narinfo is stored as: unsigned (the server signs when serving). */
  serializeUnsigned(info: NarInfo): string {
    return serializeNarInfo({ ...info, sigs: [] });
  }

  /** Signs `info`, already parsed from (or serialized as) `stored`, and keeps the result. */
  remember(stored: string, info: NarInfo): string {
    const body = serializeNarInfo({ ...info, sigs: [signFingerprint(narInfoFingerprint(info), this.key)] });
    if (this.signed.size >= this.capacity) this.signed.delete(this.signed.keys().next().value!);
    this.signed.set(stored, body);
    return body;
  }
}
