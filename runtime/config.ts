import { readFileSync } from 'node:fs';
import { EmotionMuseError } from '../schemas/errors.ts';
import { Secret } from './secret.ts';

/** One configuration option: where it comes from, its default (written once, here), and how it is read. */
export interface Option<T> {
  readonly env: string;
  readonly flag: string;
  readonly default: T;
  readonly doc: string;
  readonly parse: (raw: string) => T;
  /**
   * A secret: the value comes from `env`, or from the file that `<env>_FILE` or the flag names;
   * it is a {@link Secret} (printed redacted) and help shows no default.
   */
  readonly secret?: true;
}

export type OptionTable = Record<string, Option<unknown>>;
export type ConfigOf<S extends OptionTable> = { readonly [K in keyof S]: S[K] extends Option<infer T> ? T : never };

export const opt = {
  string(env: string, flag: string, def: string, doc: string): Option<string> {
    return { env, flag, default: def, doc, parse: (raw) => raw };
  },
  int(env: string, flag: string, def: number, doc: string, range: { min?: number; max?: number } = {}): Option<number> {
    return {
      env, flag, default: def, doc,
      parse: (raw) => {
        const n = Number(raw);
        if (!Number.isInteger(n)) throw new Error(`expected an integer, got "${raw}"`);
        if (range.min !== undefined && n < range.min) throw new Error(`must be >= ${range.min}, got ${n}`);
        if (range.max !== undefined && n > range.max) throw new Error(`must be <= ${range.max}, got ${n}`);
        return n;
      },
    };
  },
  number(env: string, flag: string, def: number, doc: string, range: { min?: number; max?: number } = {}): Option<number> {
    return {
      env, flag, default: def, doc,
      parse: (raw) => {
        const n = Number(raw);
        if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`expected a number, got "${raw}"`);
        if (range.min !== undefined && n < range.min) throw new Error(`must be >= ${range.min}, got ${n}`);
        if (range.max !== undefined && n > range.max) throw new Error(`must be <= ${range.max}, got ${n}`);
        return n;
      },
    };
  },
  bool(env: string, flag: string, def: boolean, doc: string): Option<boolean> {
    return {
      env, flag, default: def, doc,
      parse: (raw) => {
        if (['1', 'true', 'yes', 'on', ''].includes(raw.toLowerCase())) return true;
        if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
        throw new Error(`expected true or false, got "${raw}"`);
      },
    };
  },
  /** A password or key: from `env`, or read from the file named by `<env>_FILE` or `--<flag>`; undefined when none. */
  secret(env: string, flag: string, doc: string): Option<Secret | undefined> {
    return { env, flag, default: undefined, doc: `${doc}; or a file: ${env}_FILE / --${flag}`, secret: true, parse: (raw) => new Secret(raw) };
  },
  list(env: string, flag: string, def: readonly string[], doc: string): Option<readonly string[]> {
    return {
      env, flag, default: def, doc,
      parse: (raw) => Object.freeze(raw.split(',').map((s) => s.trim()).filter(Boolean)),
    };
  },
  oneOf<const T extends string>(env: string, flag: string, def: T, values: readonly T[], doc: string): Option<T> {
    return {
      env, flag, default: def, doc: `${doc} (${values.join(' | ')})`,
      parse: (raw) => {
        if (!(values as readonly string[]).includes(raw)) throw new Error(`expected one of ${values.join(', ')}, got "${raw}"`);
        return raw as T;
      },
    };
  },
};

/** Parses `--name value`, `--name=value` and bare `--flag` (true) arguments; the rest are positionals. */
export function parseArgv(argv: readonly string[]): { flags: Map<string, string>; positionals: string[] } {
  const flags = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    if (eq > 0) {
      flags.set(arg.slice(2, eq), arg.slice(eq + 1));
    } else {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        flags.set(arg.slice(2), next);
        i++;
      } else {
        flags.set(arg.slice(2), 'true');
      }
    }
  }
  return { flags, positionals };
}

/**
 * One validated, frozen configuration object: flags win over the environment, which wins over
 * the defaults. Unknown flags and bad values are a {@link EmotionMuseError} with code CONFIG_INVALID
 * that names every problem at once.
 */
export function loadConfig<S extends OptionTable>(
  table: S,
  source: { argv?: readonly string[]; env?: NodeJS.ProcessEnv; allowUnknownFlags?: boolean } = {},
): ConfigOf<S> {
  const { flags } = parseArgv(source.argv ?? []);
  const env = source.env ?? process.env;
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  const known = new Set<string>();
  for (const [key, option] of Object.entries(table)) {
    known.add(option.flag);
    let fromFlag = flags.get(option.flag);
    let fromEnv = env[option.env];
    if (option.secret) {
      // a secret's flag and <ENV>_FILE name a file; only the environment variable holds the value itself
      const file = fromFlag ?? (fromEnv === undefined ? env[`${option.env}_FILE`] : undefined);
      if (file !== undefined) {
        try {
          fromFlag = undefined;
          fromEnv = readFileSync(file, 'utf8').trim();
        } catch (err) {
          problems.push(`${option.env}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
          continue;
        }
      }
    }
    const raw = fromFlag ?? fromEnv;
    if (raw === undefined) {
      out[key] = option.default;
      continue;
    }
    try {
      out[key] = option.parse(raw);
    } catch (err) {
      const where = fromFlag !== undefined ? `--${option.flag}` : option.env;
      problems.push(`${where}: ${(err as Error).message}`);
    }
  }
  if (!source.allowUnknownFlags) {
    for (const flag of flags.keys()) {
      if (!known.has(flag) && flag !== 'help') problems.push(`unknown flag --${flag}`);
    }
  }
  if (problems.length > 0) {
    throw new EmotionMuseError('CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return Object.freeze(out) as ConfigOf<S>;
}

/** The options table as help text: flag, environment variable, default, description. */
export function configHelp(table: OptionTable): string {
  const rows = Object.values(table).map((o) => {
    const def = o.secret ? '' : Array.isArray(o.default) ? (o.default as string[]).join(',') : String(o.default);
    return [`--${o.flag} <${o.secret ? 'file' : 'value'}>`, o.env, def === '' ? '(none)' : def, o.doc] as const;
  });
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows
    .map(([f, e, d, doc]) => `  ${f.padEnd(w0)}  ${e.padEnd(w1)}  ${doc} [default: ${d}]`)
    .join('\n');
}
