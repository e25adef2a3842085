import { EmotionMuseError, errorMessage } from '../schemas/errors.ts';
import { wantsHelp, type Command } from './command.ts';
import { deadLettersCommand } from './dead-letters.ts';
import { evalCommand } from './eval.ts';
import { sessionCommand } from './session.ts';
import { recommendationsCommand } from './recommendations.ts';
import { latencyCommand } from './latency.ts';
import { publishCommand, recordCommand, replayCommand, subscribeCommand } from './edge.ts';
import { gatewayCommand } from './gateway.ts';
import { infraCommand } from './infra.ts';
import { pipelineCommand } from './pipeline.ts';
import { runCommand } from './run.ts';
import { tokenCommand } from './token.ts';
import { topicsCommand } from './topics.ts';
import { usersCommand } from './users.ts';

const COMMANDS: Record<string, Command> = {
  pipeline: pipelineCommand,
  run: runCommand,
  gateway: gatewayCommand,
  topics: topicsCommand,
  infra: infraCommand,
  eval: evalCommand,
  session: sessionCommand,
  recommendations: recommendationsCommand,
  publish: publishCommand,
  subscribe: subscribeCommand,
  record: recordCommand,
  replay: replayCommand,
  latency: latencyCommand,
  'dead-letters': deadLettersCommand,
  token: tokenCommand,
  users: usersCommand,
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return `emotionmuse: camera frames in, emotion-aware music recommendations out (a Kafka pipeline)

usage: emotionmuse <command> [options]     (emotionmuse <command> --help for its options)

commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`).join('\n')}`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  // Every command answers --help here, in one place.
  if (wantsHelp(rest)) {
    console.log(command.help);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof EmotionMuseError) {
      console.error(`error [${err.code}]: ${err.message}`);
      return 2;
    }
    console.error(`error: ${errorMessage(err)}`);
    return 1;
  }
}
