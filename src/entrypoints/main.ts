import { run } from '../action/main.js';

await run();
process.exit(); // keep-alive sockets must not keep the step running
