import { run } from '../action/post.js';

await run();
process.exit(); // keep-alive sockets must not keep the step running
