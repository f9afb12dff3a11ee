/**
 * Writes a pack from the local store: each path's NAR serialized in-process and zstd-compressed
 * (the push's own `compressedNar`, which also checks the NAR is the size the store says), appended
 * to nars.zst in the order given (references first), then the index beside it.
 */
import { existsSync } from 'node:fs';
import { open, mkdir, truncate, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { compressedNar } from '../push/nar-file.js';
import type { PathInfo } from '../push/local-store.js';
import { PACK_DIR, PACK_INDEX, PACK_NARS, serializeIndex, type PackEntry, type PackIndex } from './format.js';

export interface WrittenPack {
  /** The directory holding `sluice-pack/`, the cwd @actions/cache saves from. */
  root: string;
  index: PackIndex;
  /** Bytes of nars.zst. */
  bytes: number;
  /** Paths of the plan deleted from the store before they were written (not in the pack). */
  vanished: string[];
}

export async function writePack(root: string, infos: PathInfo[], now = new Date()): Promise<WrittenPack> {
  const dir = join(root, PACK_DIR);
  await mkdir(dir, { recursive: true });
  const file = await open(join(dir, PACK_NARS), 'w');
  const entries: PackEntry[] = [];
  const vanished: string[] = [];
  let offset = 0;
  try {
    for (const info of infos) {
      let size = 0;
      try {
        // Each chunk's buffer is reused once the next is asked for: written before that.
        for await (const chunk of compressedNar(info, 'zstd')) {
          await file.write(chunk, 0, chunk.length, offset + size);
          size += chunk.length;
        }
      } catch (error) {
        // The store is shared: a path deleted since the plan (a GC, `nix-store --delete`) is left
        // out. Nix deletes a path only after every path referring to it, so the pack stays closed.
        if (existsSync(info.path)) throw error;
        vanished.push(info.path);
        continue;
      }
      const entry: PackEntry = {
        path: info.path,
        narHash: info.narHash,
        narSize: info.narSize,
        references: info.references.map((r) => basename(r)),
        offset,
        size,
      };
      if (info.deriver) entry.deriver = basename(info.deriver);
      if (info.ca) entry.ca = info.ca;
      entries.push(entry);
      offset += size;
    }
  } finally {
    await file.close();
  }
  const index: PackIndex = { createdAt: now.toISOString(), entries };
  // What a vanished path left past the last entry is cut off.
  await truncate(join(dir, PACK_NARS), offset);
  await writeFile(join(dir, PACK_INDEX), serializeIndex(index));
  return { root, index, bytes: offset, vanished };
}
