import { fileURLToPath } from 'node:url';
import { RESTORE_CHILD_ARG, runRestoreChild } from '../proxy/pack/restore-child.js';
import { run } from '../proxy/runtime/daemon-main.js';

// The same bundle is the daemon and, started again by it, GitHub cache mode's restore process.
if (process.argv[2] === RESTORE_CHILD_ARG) runRestoreChild();
else await run(process.argv[2], fileURLToPath(import.meta.url));
