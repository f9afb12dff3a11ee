/**
 * Run as a child process by nar.test.ts: hashes one (compressed) NAR file with the tests' hashNar (nar-digest.ts) and reports
 * the result and how much the process's peak RSS grew while doing it.
 *
 * Node frees spent stream buffers lazily, so any stream lifts RSS by some garbage not yet
 * collected; nar.test.ts runs this with a small young generation to keep that float small. To
 * measure only what grows with the data, the child first hashes the file's first 32 MiB as a
 * warm-up (all code loaded), takes the peak RSS then as baseline and reports the growth over it.
 * Usage: node --max-semi-space-size=1 --experimental-transform-types --import ./ts-hooks.mjs hash-nar-child.ts FILE COMPRESSION
 */
import { createReadStream } from 'node:fs';
import { hashNar } from './nar-digest.js';

const [file, compression] = process.argv.slice(2) as [string, string];
const peakRss = () => process.resourceUsage().maxRSS * 1024;

await hashNar(createReadStream(file, { end: 32 * 1024 * 1024 - 1 }), compression).catch(() => undefined);
const warmRss = peakRss();
const { narHash, narSize } = await hashNar(createReadStream(file), compression);
process.stdout.write(
  JSON.stringify({ narHash: narHash.toString(), narSize, warmRss, rssGrowth: peakRss() - warmRss }),
);
