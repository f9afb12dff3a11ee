import { runVerifyWorker } from '../server/cache/verify-worker.js';

runVerifyWorker();
