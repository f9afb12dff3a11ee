import { run } from '../action/hook.js';

await run(process.argv.slice(2));
