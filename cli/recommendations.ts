import { configHelp, opt } from '../runtime/config.ts';
import { commonOptions } from '../runtime/common-config.ts';
import { redisSecurity, securityOptions } from '../runtime/security.ts';
import { recommenderOptions } from '../processors/index.ts';
import { loadCatalogue } from '../processors/recommender/catalogue.ts';
import { UserStore } from '../state/user-store.ts';
import type { Recommendation } from '../schemas/generated/types.ts';
import { verbConfig, type Command } from './command.ts';

const getOptions = {
  redisUrl: commonOptions.redisUrl,
  ...securityOptions,
  redisPrefix: recommenderOptions.redisPrefix,
  modelDir: recommenderOptions.modelDir,
  user: opt.string('EM_USER', 'user', '', 'The user whose last list to print'),
  json: opt.bool('EM_JSON', 'json', false, 'Print the list as JSON'),
};

/** A number as text, or `?` for whatever else Redis may hold (null, a string). */
const num = (x: unknown, digits: number) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '?');

/**
 * A recommendation list as a table: rank, track, artist, final / preference / emotion scores.
 * Whatever shape the stored list has, this prints what it can and never throws.
 */
export function formatList(list: Recommendation, names: (trackId: string) => { title: string; artist: string } | undefined): string {
  const e = list.emotion;
  const trigger = typeof list.trigger === 'string' ? list.trigger.toLowerCase().replace('_', ' ') : '?';
  const head = `${list.userId}: ${trigger} (${list.causeId}), ${e ? `emotion ${e.label}, valence ${num(e.valence, 2)}, arousal ${num(e.arousal, 2)}` : 'no emotion yet'}, model ${list.modelVersion}`;
  const rows = (Array.isArray(list.items) ? list.items : []).map((it) => {
    const n = typeof it?.trackId === 'string' ? names(it.trackId) : undefined;
    return `  ${String(it?.rank ?? '?').padStart(2)}. ${(n ? `${n.title} - ${n.artist}` : String(it?.trackId ?? '?')).slice(0, 60).padEnd(60)} final ${num(it?.finalScore, 3)}  pref ${num(it?.preferenceScore, 3)}  emotion ${num(it?.emotionScore, 3)}`;
  });
  return [head, ...rows].join('\n');
}

export const recommendationsCommand: Command = {
  summary: 'read a user\'s last recommendation list from Redis (recommendations get)',
  help: `usage: emotionmuse recommendations get --user <id> [options]

Prints the last list published for the user, as the recommender keeps it in Redis (no Kafka
needed). Exits 3 when the user has no list.

options:
${configHelp(getOptions)}`,
  async run(argv) {
    const config = verbConfig(argv, 'get', getOptions, this.help, ['user']);
    if (typeof config === 'number') return config;
    const store = new UserStore(config.redisUrl, { prefix: config.redisPrefix, historySize: 50, ttlSeconds: 1 }, redisSecurity(config));
    await store.connect();
    try {
      // (a list stored in a shape that is not JSON is an INVALID_RECORD error, printed by main)
      const list = await store.lastList(config.user);
      if (!list) {
        console.error(`no recommendations for user ${config.user}`);
        return 3;
      }
      if (config.json) {
        console.log(JSON.stringify(list, null, 2));
      } else {
        const catalogue = loadCatalogue(config.modelDir);
        console.log(formatList(list, (id) => {
          const i = catalogue.indexOf.get(id);
          return i === undefined ? undefined : { title: catalogue.titles[i]!, artist: catalogue.artists[i]! };
        }));
      }
      return 0;
    } finally {
      await store.close();
    }
  },
};
