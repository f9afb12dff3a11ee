/**
 * The real verification worker, made to crash at an upload's second chunk (an uncaught error, as a
 * bug or a failed allocation would): for the tests of what the server does when a worker dies.
 */
import { parentPort } from 'node:worker_threads';
import { runVerifyWorker } from '../../src/server/cache/verify-worker.js';
import type { ToWorker } from '../../src/server/cache/verify-protocol.js';

let chunks = 0;
// Registered before the worker's own listener, so it throws before that chunk is checked.
parentPort!.on('message', (message: ToWorker) => {
  if (message.type === 'chunk' && ++chunks === 2)
    throw new Error('the verification worker crashed on purpose');
});
runVerifyWorker();
