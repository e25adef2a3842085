#!/usr/bin/env node
// Entry point of the `emotionmuse` command: runs the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
const code = await main(process.argv.slice(2));
// A command that failed exits now: what it had opened before failing (a Redis connection, model
// worker threads, a Kafka client) must not keep a half-started process alive.
if (code !== 0) process.exit(code);
process.exitCode = code;
