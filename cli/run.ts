import { configHelp } from '../runtime/config.ts';
import { processorOptions } from '../runtime/common-config.ts';
import { runProcessor } from './run-processor.ts';
import { PROCESSORS } from '../processors/index.ts';
import type { Command } from './command.ts';
import { deploymentTopology } from './deployment.ts';

const topology = deploymentTopology();

export const runCommand: Command = {
  summary: 'run one processor in this process (for production: one process per processor)',
  help: `usage: emotionmuse run <processor> [options]

processors:
${Object.keys(PROCESSORS).map((n) => { const p = topology.processors.find((q) => q.name === n); return `  ${n.padEnd(12)} ${p?.description ?? ''} [${p?.guarantee ?? ''}]`; }).join('\n')}

The processor consumes its input topics in a consumer group, one task per partition, and commits
each batch as its guarantee says (--guarantee): exactly once (outputs, state changes, dead
letters and input offsets in one Kafka transaction) or at least once (outputs acknowledged, state
and offsets committed every --commit-interval-ms; a crash repeats the records since the last
commit, which the next stage drops). It serves /metrics, /healthz and /readyz. SIGTERM or SIGINT
stops it cleanly.

options of every processor (flags win over environment variables):
${configHelp(processorOptions)}
${Object.entries(PROCESSORS)
  .filter(([, e]) => Object.keys(e.options).length > 0)
  .map(([n, e]) => `\noptions of ${n}:\n${configHelp(e.options)}`)
  .join('\n')}`,
  async run(argv) {
    const [name, ...rest] = argv;
    if (!name) {
      console.log(this.help);
      return 2;
    }
    return runProcessor(name, rest);
  },
};
