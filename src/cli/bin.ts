#!/usr/bin/env node
/**
 * The `quantc` process entry point without a startup snapshot: every command,
 * each loaded on demand.
 */
import { main } from './main.js';
import { runProcess } from './run-process.js';

await runProcess(process.argv.slice(2), (argv) => main(argv));
