import { describe, expect, it } from 'vitest';
import { configHelp, loadConfig, opt, parseArgv } from '../../runtime/config.ts';
import { processorOptions } from '../../runtime/common-config.ts';

const table = {
  brokers: opt.list('T_BROKERS', 'brokers', ['a:1'], 'brokers'),
  batch: opt.int('T_BATCH', 'batch', 10, 'batch size', { min: 1, max: 100 }),
  verbose: opt.bool('T_VERBOSE', 'verbose', false, 'talk more'),
  mode: opt.oneOf('T_MODE', 'mode', 'fast', ['fast', 'safe'], 'mode'),
};

describe('configuration', () => {
  it('takes defaults, then the environment, then flags', () => {
    expect(loadConfig(table, { argv: [], env: {} })).toEqual({ brokers: ['a:1'], batch: 10, verbose: false, mode: 'fast' });
    expect(loadConfig(table, { argv: [], env: { T_BATCH: '20', T_BROKERS: 'x:1, y:2' } })).toMatchObject({ batch: 20, brokers: ['x:1', 'y:2'] });
    expect(loadConfig(table, { argv: ['--batch', '30', '--verbose', '--mode=safe'], env: { T_BATCH: '20' } })).toMatchObject({ batch: 30, verbose: true, mode: 'safe' });
  });

  it('returns a frozen object', () => {
    const config = loadConfig(table, { argv: [], env: {} });
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { batch: number }).batch = 3;
    }).toThrow(TypeError);
  });

  it('names every problem at once with a CONFIG_INVALID error', () => {
    let caught: unknown;
    try {
      loadConfig(table, { argv: ['--batch', '0', '--mode', 'slow', '--colour', 'red'], env: { T_VERBOSE: 'maybe' } });
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'CONFIG_INVALID' });
    const message = (caught as Error).message;
    expect(message).toContain('--batch: must be >= 1');
    expect(message).toContain('--mode: expected one of fast, safe');
    expect(message).toContain('T_VERBOSE: expected true or false');
    expect(message).toContain('unknown flag --colour');
  });

  it('shows every option with its environment variable and default in the help', () => {
    const help = configHelp(processorOptions);
    for (const option of Object.values(processorOptions)) {
      expect(help).toContain(`--${option.flag}`);
      expect(help).toContain(option.env);
    }
    expect(help).toContain('[default: 127.0.0.1:9092]');
  });

  it('parses positionals and the -- separator', () => {
    const { flags, positionals } = parseArgv(['apply', '--x', '1', 'more', '--', '--not-a-flag']);
    expect(positionals).toEqual(['apply', 'more', '--not-a-flag']);
    expect(flags.get('x')).toBe('1');
  });
});
