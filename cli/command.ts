/** A subcommand: its one-line summary, full help, and what it does. Returns the exit code. */
export interface Command {
  readonly summary: string;
  readonly help: string;
  run(argv: string[]): Promise<number>;
}

export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}
