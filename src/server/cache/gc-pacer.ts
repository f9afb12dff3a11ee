/**
 * Young-generation collections paced by the bytes a thread has finished with. Node gives each
 * socket read and each decompressor output a fresh buffer; V8 frees one only when it collects its
 * small JS object, and a thread that allocates few JS objects (the server's upload path, once the
 * checks moved to workers) collects rarely: spent buffers piled up by tens of MB before V8's
 * external-memory limit started a collection. A young collection every few MiB frees them while
 * they are young, for well under a millisecond.
 *
 * `--expose-gc` is not allowed for workers and not passed to `sluice serve`, so it is turned on
 * here, for a context made after it (V8's flags are per process; the context is this thread's).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'minor' }) => void;

let collect: Collect | undefined;

export class GcPacer {
  private since = 0;

  constructor(private readonly everyBytes: number) {}

  /** `bytes` of buffers were used and dropped. */
  spent(bytes: number): void {
    this.since += bytes;
    if (this.since < this.everyBytes) return;
    this.since = 0;
    if (!collect) {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as Collect;
    }
    collect({ type: 'minor' });
  }
}
