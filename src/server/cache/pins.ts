/**
 * Pins added by a writer (the Action's `pin` input, through `POST /_api/v1/pins`): only into its
 * own write slice, and only paths that slice holds, so a pin is possible exactly where the policy
 * lets the job write. Pinned closures ignore `max_age` (docs/retention.md).
 */
import { HttpError } from '../../contracts/http-error.js';
import type { Logger } from '../server-log.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { Writer } from './slice-owner.js';

export interface PinRequest {
  name: string;
  /** Full store paths, deduplicated. */
  paths: string[];
  ttlSeconds?: number;
  /** Pin those of the paths the slice holds, rather than refusing the pin. */
  skipMissing: boolean;
}

export interface PinOutcome {
  pinned: number;
  missing: number;
  expiresAt: Date | null;
}

const hashPartOf = (path: string): string => path.slice(path.lastIndexOf('/') + 1).slice(0, 32);

export async function addPin(
  deps: { meta: MetadataStore; log: Logger; now: () => number },
  writer: Writer,
  pin: PinRequest,
): Promise<PinOutcome> {
  const { slice } = writer;
  const rows = await deps.meta.findNarInfos(pin.paths.map(hashPartOf), (candidate) => candidate === slice);
  const found = new Set(rows.map((row) => row.hashPart));
  const missing = pin.paths.filter((path) => !found.has(hashPartOf(path)));
  const present = pin.paths.filter((path) => found.has(hashPartOf(path)));
  if (missing.length > 0 && (!pin.skipMissing || present.length === 0)) {
    throw new HttpError(
      400,
      `${missing.length} of the paths are not in slice '${slice}' (push them first): ${missing.slice(0, 5).join(', ')}`,
      'pin_missing_path',
    );
  }
  const now = deps.now();
  const expiresAt = pin.ttlSeconds ? new Date(now + pin.ttlSeconds * 1000) : null;
  await deps.meta.putPin({ slice, name: pin.name, storePaths: present, createdAt: new Date(now), expiresAt });
  deps.log.info({ slice, pin: pin.name, paths: present.length, expiresAt }, 'pin added');
  return { pinned: present.length, missing: missing.length, expiresAt };
}
