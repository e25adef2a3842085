import { entry } from '../options.ts';
import { createPassthroughCore } from './core.ts';

/** frames -> passthrough, exactly once: exercises the runtime. */
export const passthrough = entry({
  name: 'passthrough',
  port: 9100,
  options: {},
  stateVersion: 'v1',
  create: ({ metrics }) => createPassthroughCore({ onSkip: (reason) => metrics.skipped.inc({ stage: 'passthrough', reason }) }),
});
