/**
 * Slice ownership: a template slice (`${repository}`) belongs to the repository, of its issuer,
 * that wrote it first (names change hands on GitHub; ids do not; two issuers may both have an
 * `acme`). Slices named in the config follow their write rules alone.
 */
import { HttpError } from '../../contracts/http-error.js';
import type { MetadataStore, WriterIdentity } from '../storage/metadata-store.js';

/** Who writes, and where: resolved from a cache token with a write slice. */
export interface Writer {
  slice: string;
  /** Bind the slice to the writer's repository on its first accepted narinfo. */
  bindWrite: boolean;
  identity: WriterIdentity;
}

/**
 * Refuses a write into a slice another repository owns. Uploads only check (`bind` false); an
 * accepted narinfo binds the slice, so a refused request changes nothing.
 */
export async function checkSliceOwner(meta: MetadataStore, writer: Writer, bind: boolean): Promise<void> {
  if (!writer.bindWrite) return;
  const { issuer = '', repositoryId = '', repositoryOwnerId = '' } = writer.identity;
  const owner = bind
    ? await meta.bindSlice(writer.slice, { issuer, repositoryId, repositoryOwnerId })
    : await meta.sliceOwner(writer.slice);
  if (owner && owner.issuer !== issuer) {
    throw new HttpError(
      403,
      `slice '${writer.slice}' belongs to a repository of another issuer ('${owner.issuer}')`,
      'slice_owner',
    );
  }
  if (owner && owner.repositoryId !== repositoryId) {
    throw new HttpError(
      403,
      `slice '${writer.slice}' belongs to another repository (id ${owner.repositoryId})`,
      'slice_owner',
    );
  }
}
