import { configHelp, loadConfig, opt } from '../runtime/config.ts';
import { tokenKeyOptions, tokenConfigOf } from '../auth/options.ts';
import { AuthError, mintDevelopmentToken, parseTtl } from '../auth/tokens.ts';
import type { Command } from './command.ts';

const tokenOptions = {
  user: opt.string('EM_USER', 'user', '', 'The user the token is for (its subject)'),
  ttl: opt.string('EM_TOKEN_TTL', 'ttl', '1h', 'How long the token lives: 90s, 15m, 1h, 7d'),
  ...tokenKeyOptions,
};

export const tokenCommand: Command = {
  summary: 'mint a development bearer token for a user (HS256, with an expiry)',
  help: `usage: emotionmuse token --user <id> [--ttl 1h]

Prints a JWT whose subject is the user and that expires after --ttl, signed with the HS256 secret
from EM_JWT_SECRET or --jwt-secret-file (at least 32 bytes), with --jwt-issuer and --jwt-audience
when set (the verifiers' settings of the same names). It is for development: in production a
real identity provider issues tokens, and verifiers take its public key or JWKS file. The secret is
never printed.

options:
${configHelp(tokenOptions)}`,
  async run(argv) {
    const c = loadConfig(tokenOptions, { argv });
    if (!c.user) {
      console.error(`choose --user <id>\n\n${this.help}`);
      return 2;
    }
    try {
      const token = await mintDevelopmentToken(tokenConfigOf(c), c.user, parseTtl(c.ttl));
      console.log(token);
      return 0;
    } catch (err) {
      console.error(err instanceof AuthError ? `${err.code}: ${err.message}` : (err as Error).message);
      return 2;
    }
  },
};
