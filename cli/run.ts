import { configHelp } from '../runtime/config.ts';
import { processorOptions } from '../runtime/common-config.ts';
import { runProcessor } from '../runtime/run-processor.ts';
import { PROCESSORS } from '../processors/index.ts';
import { buildTopology } from '../topology/topology.ts';
import type { Command } from './command.ts';

const topology = buildTopology();

export const runCommand: Command = {
  summary: 'run one processor in this process (for production: one process per processor)',
  help: `usage: emotionmuse run <processor> [options]

processors:
${Object.keys(PROCESSORS).map((n) => `  ${n.padEnd(12)} ${topology.processors.find((p) => p.name === n)?.description ?? ''}`).join('\n')}

The processor consumes its input topics in a consumer group, processes each batch exactly once
(outputs, state changes, dead letters and input offsets in one Kafka transaction), and serves
/metrics, /healthz and /readyz. SIGTERM or SIGINT stops it cleanly.

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
