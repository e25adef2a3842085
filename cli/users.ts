import kafkajs from 'kafkajs';
import { configHelp, opt } from '../runtime/config.ts';
import { commonOptions } from '../runtime/common-config.ts';
import { createKafka } from '../runtime/kafka.ts';
import { PartitionTable, sendChecked } from '../runtime/checked-send.ts';
import { kafkaSecurity, redisSecurity } from '../runtime/security.ts';
import { recommenderOptions } from '../processors/index.ts';
import { Redis } from 'ioredis';
import { migrateLegacyKeys } from '../state/migrate.ts';
import { clusterNodes, REDIS_OPTIONS } from '../state/redis.ts';
import { UserStore } from '../state/user-store.ts';
import { allTopics } from '../topology/topology.ts';
import { verbConfig, type Command } from './command.ts';
import { deploymentTopology } from './deployment.ts';

const { ConfigResourceTypes } = kafkajs;

const forgetOptions = {
  ...commonOptions,
  redisPrefix: recommenderOptions.redisPrefix,
  user: opt.string('EM_USER', 'user', '', 'The user to forget (the `sub` of their tokens)'),
};

/** How long the broker takes at most to delete a closed segment past its retention (log.retention.check.interval.ms, 5 min by default). */
const RETENTION_CHECK_MS = 5 * 60_000;

const duration = (ms: number) => (ms % 86_400_000 === 0 ? `${ms / 86_400_000} d` : ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : `${Math.round(ms / 60_000)} min`);

const migrateOptions = {
  ...commonOptions,
  redisPrefix: recommenderOptions.redisPrefix,
  dryRun: opt.bool('EM_DRY_RUN', 'dry-run', false, 'Count what would move, move nothing'),
};

export const usersCommand: Command = {
  summary: 'forget a user (Redis state, changelog tombstones); move Redis keys of the old layout',
  help: `usage: emotionmuse users forget --user <id> [options]
       emotionmuse users migrate-keys [--dry-run] [options]

forget   deletes what EmotionMuse holds about one user where it can be deleted at once:
           - Redis: their emotion, history and last list, the remembered outputs of their
             records, and their gateway sessions (as the Redis admin user in the secured mode);
           - every compacted changelog of the topology (each state version): a tombstone for
             their key on every partition, so that a restore finds no state for them and the
             log cleaner removes the old values (within max.compaction.lag.ms, 1 d);
         then prints what stays in the other topics until their retention deletes it, with the
         latest date, read from the broker's topic configuration. Run it once the user has
         stopped sending: a record of theirs still in flight writes new state.

migrate-keys
         moves the per-user Redis keys written before the key scheme of state/keys.ts
         (\`<prefix>u:<user>\`, \`...:history\`, \`...:list\`) to it, telling a user's history
         from the hash of a user whose id ends in ":history" by the key's type. Run it once,
         after the upgrade, as the Redis admin user in the secured mode; a second run moves
         nothing. Remembered outputs and gateway sessions of the old layout expire by themselves
         (1 h, 1 d) and are not moved (state/migrate.ts says why).

options:
${configHelp(forgetOptions)}
  --dry-run (EM_DRY_RUN)  migrate-keys: count what would move, move nothing`,
  async run(argv) {
    if (argv.includes('migrate-keys')) return migrate(argv, this.help);
    const c = verbConfig(argv, 'forget', forgetOptions, this.help, ['user']);
    if (typeof c === 'number') return c;
    const topology = deploymentTopology(c);

    const store = new UserStore(c.redisUrl, { prefix: c.redisPrefix, historySize: 1, ttlSeconds: 1 }, redisSecurity(c, 'admin'));
    await store.connect();
    let redisKeys: number;
    try {
      redisKeys = await store.forget(c.user);
    } finally {
      await store.close();
    }
    console.log(`redis: ${redisKeys} key(s) of ${c.user} deleted (prefix ${c.redisPrefix})`);

    const kafka = createKafka({ brokers: c.brokers, clientId: 'emotionmuse-users', security: kafkaSecurity(c, 'admin') });
    const admin = kafka.admin();
    const producer = kafka.producer({ idempotent: true });
    await Promise.all([admin.connect(), producer.connect()]);
    try {
      const names = await admin.listTopics();
      // every state version's changelog of every stateful processor, not only the current one
      const changelogs = names.filter((n) => topology.processors.some((p) => p.stateful && n.startsWith(`${topology.prefix}${p.name}.state-`) && n.endsWith('.changelog'))).sort();
      const meta = changelogs.length > 0 ? await admin.fetchTopicMetadata({ topics: changelogs }) : { topics: [] };
      const partitions = new PartitionTable(admin);
      for (const t of meta.topics) {
        // a key lives on one partition; writing the tombstone to each needs no knowledge of which
        await sendChecked(producer, partitions, [{ topic: t.name, messages: t.partitions.map((p) => ({ key: c.user, value: null, partition: p.partitionId })) }]);
        console.log(`changelog: tombstones for ${c.user} written to ${t.name} (${t.partitions.length} partitions)`);
      }
      if (changelogs.length === 0) console.log('changelog: none found');

      const kept = allTopics(topology).filter((s) => !s.cleanupPolicy.includes('compact') && names.includes(s.name));
      const configs = kept.length > 0 ? await admin.describeConfigs({ includeSynonyms: false, resources: kept.map((s) => ({ type: ConfigResourceTypes.TOPIC, name: s.name, configNames: ['retention.ms', 'segment.ms'] })) }) : { resources: [] };
      const now = Date.now();
      console.log(`\nwhat stays: records of ${c.user} already in these topics, until retention deletes them`);
      console.log(`${'topic'.padEnd(44)} ${'retention'.padEnd(10)} ${'segment'.padEnd(8)} gone by (UTC, at the latest)`);
      for (const s of kept) {
        const entries = configs.resources.find((r) => r.resourceName === s.name)?.configEntries ?? [];
        const retention = Number(entries.find((e) => e.configName === 'retention.ms')?.configValue ?? s.retentionMs);
        const segment = Number(entries.find((e) => e.configName === 'segment.ms')?.configValue ?? s.segmentMs);
        const until = retention < 0 ? 'never (retention is unlimited)' : new Date(now + retention + segment + RETENTION_CHECK_MS).toISOString().slice(0, 16).replace('T', ' ');
        console.log(`${s.name.padEnd(44)} ${duration(retention).padEnd(10)} ${duration(segment).padEnd(8)} ${until}`);
      }
      console.log('(a record goes when the newest record of its closed segment is older than the retention: at most retention + segment.ms + 5 min after it was written)');
    } finally {
      await Promise.all([producer.disconnect(), admin.disconnect()]);
    }
    return 0;
  },
};

async function migrate(argv: readonly string[], help: string): Promise<number> {
  const c = verbConfig(argv, 'migrate-keys', migrateOptions, help);
  if (typeof c === 'number') return c;
  // The old layout predates Redis Cluster support (its keys had no hash tags): one server only.
  if (clusterNodes(c.redisUrl)) {
    console.error('migrate-keys moves the old layout of one Redis server; the old layout never ran on a cluster, so there is nothing to move (give it the server\'s redis:// URL)');
    return 2;
  }
  const redis = new Redis(c.redisUrl, { ...REDIS_OPTIONS, ...redisSecurity(c, 'admin'), lazyConnect: false, enableOfflineQueue: true });
  try {
    const report = await migrateLegacyKeys(redis, c.redisPrefix, { dryRun: c.dryRun, onProgress: (n) => process.stderr.write(`\rscanned ${n} key(s) of the old layout`) });
    process.stderr.write('\n');
    console.log(`${c.dryRun ? 'would move' : 'moved'} ${report.moved} key(s) to the current layout (prefix ${c.redisPrefix})${report.kept > 0 ? `; ${report.kept} left where the current layout already had the key` : ''}`);
    for (const s of report.skipped.slice(0, 20)) console.log(`not moved: ${s.key.slice(0, 80)} (${s.why})`);
    return 0;
  } finally {
    redis.disconnect();
  }
}
