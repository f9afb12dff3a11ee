/**
 * What the server must do with an upload that PutObject does not: hash the file (FileHash),
 * decompress it and hash the NAR (NarHash), the same code as the server's verification workers,
 * here on one thread of the benchmark's own process with the files already in memory. Its CPU
 * time is a floor under the server's, whatever the server's design.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileHasher } from '../../src/nix/file-hash.js';
import { createNarHasher } from '../../src/nix/nar-hasher.js';
import type { CacheFiles } from './cache-files.js';

/** The server's stage size (src/server/cache/nar-verifier.ts). */
const CHUNK_BYTES = 1024 * 1024;

/** CPU seconds this process spent verifying every NAR file of `files` as the server does. */
export async function verificationCpuSeconds(files: CacheFiles): Promise<number> {
  let seconds = 0;
  for (const path of files.paths) {
    const bytes = await readFile(join(files.dir, path.nar));
    // xz would decompress in a child process, whose CPU this does not count: the push is zstd.
    const compression = path.nar.endsWith('.zst') ? 'zstd' : 'none';
    const before = process.cpuUsage();
    const file = new FileHasher();
    const nar = createNarHasher(compression);
    for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
      const chunk = bytes.subarray(offset, offset + CHUNK_BYTES);
      file.update(chunk);
      await nar.write(chunk);
    }
    await nar.end();
    file.digest();
    const spent = process.cpuUsage(before);
    seconds += (spent.user + spent.system) / 1e6;
  }
  return seconds;
}
