/**
 * Run as a child process by nar.test.ts: hashes one (compressed) NAR file with hashNar and reports
 * the result and how much the process's peak RSS grew while doing it.
 *
 * Node frees stream buffers lazily (V8 collects them once tens of MB of garbage have piled up), so
 * any stream, however well it streams, lifts RSS by a fixed amount. To measure what grows with the
 * data, the child first hashes the file's first 32 MiB as a warm-up (all code loaded, the garbage
 * float reached), takes the peak RSS then as baseline and reports the growth over it for the whole.
 * Usage: node --experimental-transform-types --import ./ts-hooks.mjs hash-nar-child.ts FILE COMPRESSION
 */
import { createReadStream } from 'node:fs';
import { hashNar } from '../../src/nix/nar.js';

const [file, compression] = process.argv.slice(2) as [string, string];
const peakRss = () => process.resourceUsage().maxRSS * 1024;

await hashNar(createReadStream(file, { end: 32 * 1024 * 1024 - 1 }), compression).catch(() => undefined);
const warmRss = peakRss();
const { narHash, narSize } = await hashNar(createReadStream(file), compression);
process.stdout.write(
  JSON.stringify({ narHash: narHash.toString(), narSize, warmRss, rssGrowth: peakRss() - warmRss }),
);
