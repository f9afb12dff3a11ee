/**
 * Frees the push's spent buffers as it goes. zlib gives its compressed output in fresh buffers
 * (256 KiB at a time, and one per stream), garbage once copied onto the upload's reused buffers
 * (nar-file.ts). V8 frees such a buffer only when it collects its small JS object, and a push
 * allocates too few JS objects for collections to come often: spent buffers piled up by the tens
 * of MB. A young collection every 2 MiB (~0.5 ms) frees those that died young; a full one every
 * 32 MiB (~15 ms) those that lived long enough to be promoted (a zlib buffer half filled while its
 * upload waited for the socket). Measured on a 1 GiB push: peak RSS ~118 MB without pacing, ~97
 * with full collections every 16 MiB before the copies, ~92 now with half as many.
 *
 * Needs `--expose-gc` (DAEMON_NODE_ARGS); without it (the tests' in-process daemons) it does nothing.
 */
type Collect = (options: { type: 'minor' | 'major' }) => void;
const collect = (globalThis as { gc?: Collect }).gc;

const MINOR_EVERY_BYTES = 2 * 1024 * 1024;
const MAJOR_EVERY_BYTES = 32 * 1024 * 1024;
let sinceMinor = 0;
let sinceMajor = 0;

/** `bytes` of buffers became garbage. */
export function buffersSpent(bytes: number): void {
  if (collect === undefined) return;
  sinceMinor += bytes;
  sinceMajor += bytes;
  if (sinceMajor >= MAJOR_EVERY_BYTES) {
    sinceMajor = 0;
    sinceMinor = 0;
    collect({ type: 'major' });
  } else if (sinceMinor >= MINOR_EVERY_BYTES) {
    sinceMinor = 0;
    collect({ type: 'minor' });
  }
}
