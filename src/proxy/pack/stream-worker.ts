/**
 * Reads the pack out of the download (stream-restore.ts) on a thread of its own, so that the
 * daemon's main thread is left to @actions/cache's download and to serving Nix. Reading a GiB
 * (decompressing the archive, walking the tar, writing the NARs' copy, decompressing and hashing
 * each NAR) allocates buffers the whole way; on the main thread, mixed with the download's and the
 * served NARs', they kept V8's full GC running every few tens of milliseconds. The worker is the
 * daemon's own bundle (its entry point starts `runStreamWorker` off the main thread); the main
 * thread's reader follows the worker's (index, then each verified NAR) and serves from the same file.
 */
import { parentPort, Worker, workerData } from 'node:worker_threads';
import { parseIndex, serializeIndex } from './format.js';
import { PackReader } from './reader.js';
import { streamRestore, type StreamedPack } from './stream-restore.js';

const POLL_MS = 20;

interface WorkerInput {
  sluicePackStream: true;
  tempDir: string;
  targetDir: string;
}

type ToMain =
  | { type: 'index'; index: string; narsFile: string }
  | { type: 'verified'; upTo: number }
  | { type: 'corrupt'; message: string }
  /** Reading failed before the index (the caller reads what @actions/cache extracted). */
  | { type: 'error'; message: string }
  | { type: 'finished' };

/** Whether this thread is the pack reader's worker (the daemon's entry point asks). */
export function isStreamWorker(): boolean {
  return parentPort !== null && (workerData as Partial<WorkerInput> | null)?.sluicePackStream === true;
}

/** The worker's side: reads the pack and reports. The main thread says when the download is done. */
export async function runStreamWorker(): Promise<void> {
  const port = parentPort!;
  const input = workerData as WorkerInput;
  const post = (message: ToMain): void => port.postMessage(message);
  let done = false;
  port.on('message', (message) => {
    if (message === 'done') done = true;
  });
  const streamed = await streamRestore(
    input.tempDir,
    () => done,
    input.targetDir,
    (message) => post({ type: 'error', message }),
  );
  if (streamed) {
    const { reader } = streamed;
    post({ type: 'index', index: serializeIndex(reader.index), narsFile: reader.file });
    let reported = 0;
    const report = (): void => {
      if (reader.corrupt) post({ type: 'corrupt', message: reader.corrupt });
      else if (reader.verifiedCount > reported) {
        reported = reader.verifiedCount;
        post({ type: 'verified', upTo: reported });
      }
    };
    reader.onProgress = report;
    await streamed.finished;
    report();
  }
  post({ type: 'finished' });
  port.close();
}

/**
 * `streamRestore` on a worker running `script` (the daemon's bundle): the same answer, the reader a
 * mirror of the worker's. A worker that cannot start or stops early counts as reading that failed.
 */
export async function streamRestoreInWorker(
  script: string,
  tempDir: string,
  finished: () => boolean,
  targetDir: string,
  onError: (message: string) => void,
): Promise<StreamedPack | undefined> {
  const input: WorkerInput = { sluicePackStream: true, tempDir, targetDir };
  let worker: Worker;
  try {
    worker = new Worker(script, { workerData: input, argv: [], stdout: false, stderr: false });
  } catch (error) {
    onError(`the pack reader's thread did not start: ${(error as Error).message}`);
    return undefined;
  }
  // The download's end, passed on as it is seen.
  const poll = setInterval(() => {
    if (finished()) {
      worker.postMessage('done');
      clearInterval(poll);
    }
  }, POLL_MS);
  let reader: PackReader | undefined;
  let settle: () => void = () => undefined;
  const over = new Promise<void>((resolve) => (settle = resolve));
  return new Promise<StreamedPack | undefined>((announce) => {
    let ended = false;
    const end = (why?: string): void => {
      if (ended) return;
      ended = true;
      clearInterval(poll);
      if (why !== undefined) {
        if (reader) reader.fail(why);
        else onError(why);
      }
      announce(undefined);
      settle();
    };
    worker.on('message', (message: ToMain) => {
      switch (message.type) {
        case 'index':
          reader = PackReader.streaming(parseIndex(message.index), message.narsFile);
          announce({ reader, finished: over });
          return;
        case 'verified':
          reader?.verifiedThrough(message.upTo);
          return;
        case 'corrupt':
          reader?.fail(message.message);
          return;
        case 'error':
          onError(message.message);
          return;
        case 'finished':
          end();
          void worker.terminate();
      }
    });
    worker.on('error', (error) => end(`the pack reader's thread failed: ${error.message}`));
    worker.on('exit', (code) => end(`the pack reader's thread stopped (exit code ${code})`));
  });
}
