/**
 * Garbage collections paced by the bytes of buffers a thread has finished with. Node gives each
 * socket read and each zlib output a fresh buffer; V8 frees one only when it collects its small JS
 * object, and a byte path allocates too few JS objects for collections to come often: spent
 * buffers piled up by tens of MB before V8's external-memory limit started one. A young
 * collection every few MiB (well under a millisecond) frees those that die young. Those that may
 * live long enough to be promoted are freed as they are spent instead (`releaseSpent` in
 * buffer-pool.ts): the full collections that freed them cost the push ~0.5 s of CPU per GiB.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'minor' }) => void;

export interface GcPace {
  minorEveryBytes: number;
  /**
   * `exposed`: only when the process runs with `--expose-gc` (the proxy daemon does; the tests'
   * in-process daemons do not, and collect as V8 likes). `thread`: exposes the collector for this
   * thread on first use, since `--expose-gc` is not allowed for workers and not passed to
   * `sluice serve` (V8's flags are per process; a context made after them is this thread's).
   */
  collector: 'exposed' | 'thread';
}

export class GcPacer {
  private sinceMinor = 0;
  private collect: Collect | undefined;

  constructor(private readonly pace: GcPace) {
    if (pace.collector === 'exposed') this.collect = (globalThis as { gc?: Collect }).gc;
  }

  /** `bytes` of buffers were used and dropped. */
  spent(bytes: number): void {
    this.sinceMinor += bytes;
    if (this.sinceMinor < this.pace.minorEveryBytes) return;
    this.sinceMinor = 0;
    if (!this.collect && this.pace.collector === 'thread') this.collect = threadCollector();
    this.collect?.({ type: 'minor' });
  }
}

let exposed: Collect | undefined;

function threadCollector(): Collect {
  if (!exposed) {
    setFlagsFromString('--expose-gc');
    exposed = runInNewContext('gc') as Collect;
  }
  return exposed;
}
