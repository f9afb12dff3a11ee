import { run } from '../proxy/daemon.js';

await run();
