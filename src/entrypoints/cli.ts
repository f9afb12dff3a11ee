#!/usr/bin/env node
import '../cli/node-version.js';
import { run } from '../cli/index.js';

await run(process.argv.slice(2));
