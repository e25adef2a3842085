import { configHelp, loadConfig, opt, parseArgv } from '../runtime/config.ts';
import { commonOptions } from '../runtime/common-config.ts';
import { recommenderOptions } from '../processors/index.ts';
import { loadCatalogue } from '../processors/recommender/catalogue.ts';
import { UserStore } from '../processors/recommender/store.ts';
import type { Recommendation } from '../schemas/generated/types.ts';
import type { Command } from './command.ts';

const getOptions = {
  redisUrl: commonOptions.redisUrl,
  redisPrefix: recommenderOptions.redisPrefix,
  modelDir: recommenderOptions.modelDir,
  user: opt.string('EM_USER', 'user', '', 'The user whose last list to print'),
  json: opt.bool('EM_JSON', 'json', false, 'Print the list as JSON'),
};

/** A recommendation list as a table: rank, track, artist, final / preference / emotion scores. */
export function formatList(list: Recommendation, names: (trackId: string) => { title: string; artist: string } | undefined): string {
  const e = list.emotion;
  const head = `${list.userId}: ${list.trigger.toLowerCase().replace('_', ' ')} (${list.causeId}), ${e ? `emotion ${e.label}, valence ${e.valence.toFixed(2)}, arousal ${e.arousal.toFixed(2)}` : 'no emotion yet'}, model ${list.modelVersion}`;
  const rows = list.items.map((it) => {
    const n = names(it.trackId);
    return `  ${String(it.rank).padStart(2)}. ${(n ? `${n.title} - ${n.artist}` : it.trackId).slice(0, 60).padEnd(60)} final ${it.finalScore.toFixed(3)}  pref ${it.preferenceScore.toFixed(3)}  emotion ${it.emotionScore.toFixed(3)}`;
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
    const { positionals } = parseArgv(argv);
    if (positionals[0] !== 'get') {
      console.log(this.help);
      return 2;
    }
    const config = loadConfig(getOptions, { argv: argv.filter((a) => a !== 'get') });
    if (!config.user) {
      console.error('--user is required');
      return 2;
    }
    const store = new UserStore(config.redisUrl, { prefix: config.redisPrefix, historySize: 50, ttlSeconds: 1 });
    await store.connect();
    try {
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
