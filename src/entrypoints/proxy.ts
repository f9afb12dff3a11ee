import { isStreamWorker, runStreamWorker } from '../proxy/pack/stream-worker.js';
import { run } from '../proxy/runtime/daemon-main.js';

// The same bundle runs the thread that reads a restored pack (GitHub cache mode).
if (isStreamWorker()) await runStreamWorker();
else await run();
