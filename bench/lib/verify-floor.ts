/**
 * What the server must do with an upload that PutObject does not: hash the file (FileHash),
 * decompress it and hash the NAR (NarHash). Run here as the server runs it (`verifyNarUpload`
 * with a verification worker, the stages shared with it) on files already in memory, with no HTTP
 * and no storage: its CPU time is a floor under the server's, whatever else the server does.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Hash } from '../../src/nix/hash.js';
import { verifyNarUpload } from '../../src/server/cache/nar-verifier.js';
import { VerifyPool } from '../../src/server/cache/verify-pool.js';
import { DEFAULT_UPLOAD_LIMITS } from '../../src/server/config/upload-limits.js';
import type { CacheFiles } from './cache-files.js';

/** The size of a request body's chunks as Node's HTTP server hands them over. */
const CHUNK_BYTES = 64 * 1024;

const LIMITS = {
  maxNarSize: Number.MAX_SAFE_INTEGER,
  maxRatio: DEFAULT_UPLOAD_LIMITS.maxCompressionRatio,
  maxDecompressionMemory: DEFAULT_UPLOAD_LIMITS.maxDecompressionMemory,
};

async function* chunksOf(bytes: Buffer): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES)
    yield bytes.subarray(offset, offset + CHUNK_BYTES);
}

/** CPU seconds this process (its worker thread included) spent verifying every NAR file of `files`. */
export async function verificationCpuSeconds(files: CacheFiles): Promise<number> {
  const pool = new VerifyPool({ threads: 1 });
  // The pool's worker does not hold the process open (a server's sockets do): this does meanwhile.
  const keepAlive = setInterval(() => undefined, 1000);
  let seconds = 0;
  try {
    for (const path of files.paths) {
      const bytes = await readFile(join(files.dir, path.nar));
      // `nar/<file hash>.nar[.zst]`: the push is zstd.
      const [, name, extension] = /^nar\/([0-9a-z]{52})\.nar(\.zst)?$/.exec(path.nar) ?? [];
      if (!name) throw new Error(`${path.nar} is not a NAR file name`);
      const expected = {
        fileHash: Hash.parse(name, 'sha256'),
        compression: extension ? ('zstd' as const) : ('none' as const),
        limits: LIMITS,
      };
      const before = process.cpuUsage();
      const upload = verifyNarUpload(chunksOf(bytes), expected, pool);
      for await (const stage of upload.body) void stage;
      upload.digest();
      const spent = process.cpuUsage(before);
      seconds += (spent.user + spent.system) / 1e6;
    }
  } finally {
    clearInterval(keepAlive);
    await pool.close();
  }
  return seconds;
}
