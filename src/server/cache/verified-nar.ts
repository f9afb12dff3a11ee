/**
 * What the server verified about a stored NAR file, as typed values: the form the cache service
 * works with. The MetadataStore keeps the same facts as text (`NarFacts`); the two conversions
 * below are the only places one becomes the other.
 */
import { Hash } from '../../nix/hash.js';
import type { NarCompression } from '../../nix/nar.js';
import type { NarFacts } from '../storage/metadata-store.js';

export interface VerifiedNar {
  /** The blob key: `<hash>.nar[.ext]`. */
  key: string;
  compression: NarCompression;
  /** Absent for a file uploaded by its NarHash without one (NAR_UPLOAD_WITHOUT_FILE_HASH). */
  fileHash?: Hash;
  fileSize: number;
  narHash: Hash;
  narSize: number;
}

export function toNarFacts({ fileHash, ...nar }: VerifiedNar): NarFacts {
  return { ...nar, ...(fileHash && { fileHash: fileHash.toString() }), narHash: nar.narHash.toString() };
}

export function fromNarFacts({ fileHash, ...facts }: NarFacts): VerifiedNar {
  return {
    ...facts,
    ...(fileHash && { fileHash: Hash.parse(fileHash) }),
    narHash: Hash.parse(facts.narHash),
  };
}
