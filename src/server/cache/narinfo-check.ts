/**
 * An uploaded narinfo checked against the name it was uploaded as and against the NAR its slice
 * uploaded: a writer can only publish what it proved it holds.
 */
import { HttpError } from '../../contracts/http-error.js';
import { parseNarUrl } from '../../nix/nar-url.js';
import type { NarInfo } from '../../nix/narinfo.js';
import { StorePath } from '../../nix/store-path.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import { fromNarFacts, type VerifiedNar } from './verified-nar.js';

function mismatch(message: string, reason = 'narinfo_mismatch'): HttpError {
  return new HttpError(400, message, reason);
}

/** The 400 for a narinfo whose NarSize is not that of the NAR uploaded. */
export function narSizeMismatch(stated: number, uploaded: number): HttpError {
  return mismatch(`NarSize ${stated} does not match the uploaded NAR (${uploaded} bytes)`);
}

/** The NAR the narinfo describes, as the slice uploaded it; a 400 naming the first field that disagrees. */
export async function checkNarInfo(
  stores: { meta: MetadataStore; blobs: BlobStore },
  slice: string,
  hashPart: string,
  info: NarInfo,
): Promise<VerifiedNar> {
  const storePath = StorePath.parse(info.storePath);
  if (storePath.hashPart !== hashPart) {
    throw mismatch(`StorePath ${info.storePath} does not match the uploaded name ${hashPart}.narinfo`);
  }
  const url = parseNarUrl(info.url);
  if (!url) throw mismatch(`URL '${info.url}' is not nar/<hash>.nar[.zst|.xz]`);
  if (url.compression !== info.compression) {
    throw mismatch(`Compression '${info.compression}' does not match the URL '${info.url}'`);
  }
  const facts = await stores.meta.uploadedNar(slice, url.key);
  if (!facts)
    throw mismatch(
      `its NAR ${info.url} was not uploaded to slice '${slice}': upload the NAR first`,
      'nar_missing',
    );
  const nar = fromNarFacts(facts);
  if (info.fileHash) {
    if (!nar.fileHash) {
      throw mismatch(
        `FileHash ${info.fileHash.toString()} cannot be checked: its NAR ${info.url} was uploaded without ` +
          'one (file_hash=omit), so the narinfo must state none',
      );
    }
    if (!info.fileHash.equals(nar.fileHash)) {
      throw mismatch(
        `FileHash ${info.fileHash.toString()} does not match the file uploaded (${nar.fileHash.toString()})`,
      );
    }
  }
  if (info.fileSize !== undefined && info.fileSize !== nar.fileSize) {
    throw mismatch(`FileSize ${info.fileSize} does not match the ${nar.fileSize} bytes uploaded`);
  }
  if (!info.narHash.equals(nar.narHash)) {
    throw mismatch(
      `NarHash ${info.narHash.toString()} does not match the uploaded NAR (${nar.narHash.toString()})`,
    );
  }
  if (info.narSize !== nar.narSize) {
    throw narSizeMismatch(info.narSize, nar.narSize);
  }
  if (!(await stores.blobs.head(url.key)))
    throw mismatch(`its NAR ${info.url} is no longer stored`, 'nar_missing');
  return nar;
}
