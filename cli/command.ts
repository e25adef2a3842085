import { loadConfig, parseArgv, type ConfigOf, type OptionTable } from '../runtime/config.ts';

/** A subcommand: its one-line summary, full help, and what it does. Returns the exit code. */
export interface Command {
  readonly summary: string;
  readonly help: string;
  run(argv: string[]): Promise<number>;
}

export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/**
 * The validated options of `<command> <verb> [options]`: the help is printed and the exit code 2
 * returned when the verb is not the first word, or when a `required` string option is empty.
 */
export function verbConfig<S extends OptionTable>(argv: readonly string[], verb: string, table: S, help: string, required: ReadonlyArray<keyof S & string> = []): ConfigOf<S> | number {
  if (parseArgv(argv).positionals[0] !== verb) {
    console.log(help);
    return 2;
  }
  const config = loadConfig(table, { argv: argv.filter((a) => a !== verb) });
  const missing = required.filter((k) => !config[k]);
  if (missing.length > 0) {
    console.error(missing.map((k) => `--${table[k]!.flag} is required`).join('; '));
    return 2;
  }
  return config;
}
