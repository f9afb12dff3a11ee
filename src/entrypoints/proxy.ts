import { run } from '../proxy/runtime/daemon-main.js';

await run();
