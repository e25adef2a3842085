import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { configHelp, loadConfig, opt, parseArgv } from '../runtime/config.ts';
import { commonOptions } from '../runtime/common-config.ts';
import { EmotionMuseError } from '../schemas/errors.ts';
import { createKafka } from '../runtime/kafka.ts';
import { ownPartitionTable, sendChecked } from '../runtime/checked-send.ts';
import { kafkaSecurity } from '../runtime/security.ts';
import type { DeadLetter } from '../schemas/generated/types.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import { topicName } from '../topology/topology.ts';
import type { Command } from './command.ts';
import { deploymentTopology } from './deployment.ts';
import { edgeTokenOptions, edgeTokens } from './edge-token.ts';
import { frameTokenHeaders } from '../auth/frame-token.ts';

const options = {
  ...commonOptions,
  code: opt.string('EM_DL_CODE', 'code', '', 'Only dead letters with this error code (INVALID_RECORD, UNDECODABLE_FRAME, ...); replay needs one'),
  since: opt.string('EM_DL_SINCE', 'since', '', 'list: only dead letters from this time on, an ISO time (2026-12-01T10:00Z) or an age (15m, 2h, 7d)'),
  which: opt.oneOf('EM_DL_TOPIC', 'topic', 'all', ['all', 'dead-letter', 'dead-letter-frames'], 'Which dead-letter topic: dead-letter (listens, scores, changes), dead-letter-frames (frames, kept an hour), or all'),
  json: opt.bool('EM_JSON', 'json', false, 'list: one JSON object per dead letter (values as base64)'),
  dryRun: opt.bool('EM_DRY_RUN', 'dry-run', false, 'replay: say what would be sent, send nothing'),
  // A dead letter keeps no headers: a replayed frame gets a new token of its user when the token secret is at hand.
  jwtSecretFile: edgeTokenOptions.jwtSecretFile,
};

/** `--since` as epoch milliseconds (0 when not given). */
export function parseSince(text: string, now = Date.now()): number {
  if (!text) return 0;
  const age = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (age) return now - Number(age[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`--since "${text}" is neither a time nor an age like 15m`);
  return t;
}

interface Found {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly letter: DeadLetter;
}

/** Every record of `topic` up to the high watermarks as they were when it started. */
async function readToEnd(kafka: Kafka, topic: string, groupId: string, each: (partition: number, m: KafkaMessage) => Promise<void> | void): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  if (!(await admin.listTopics()).includes(topic)) {
    await admin.disconnect();
    throw new EmotionMuseError('CONFIG_INVALID', `topic ${topic} does not exist (emotionmuse topics apply creates it; --topic-prefix names the deployment)`);
  }
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, { high: BigInt(o.high), low: BigInt(o.low) }]));
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  await admin.disconnect();
  const start = new Map(committed[0]!.partitions.map((p) => [p.partition, BigInt(p.offset)]));
  const left = new Set([...ends].filter(([p, e]) => e.high > (start.get(p)! >= 0n ? start.get(p)! : e.low)).map(([p]) => p));
  if (left.size === 0) return;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, readUncommitted: false });
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    // The end is told by kafkajs's batch events, which come for batches of commit markers too
    // (the last offsets of a transactional topic hold no message).
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.topic !== topic || BigInt(e.payload.lastOffset) + 1n < ends.get(e.payload.partition)!.high) return;
      left.delete(e.payload.partition);
      if (left.size === 0) finish();
    });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (BigInt(message.offset) < ends.get(partition)!.high) await each(partition, message);
      },
    });
    await done;
  } finally {
    await consumer.disconnect();
  }
}

function describe(f: Found): string {
  const l = f.letter;
  const size = l.valueBytes >= 0 ? `${l.valueBytes} B${l.valueTruncated ? ' (truncated)' : ''}` : `${l.value?.length ?? 0} B`;
  return `${new Date(l.failedTimeMs).toISOString()}  ${l.stage.padEnd(11)} ${l.errorCode.padEnd(18)} ${`${l.sourceTopic}[${l.sourcePartition}]@${l.sourceOffset}`.padEnd(44)} ${size.padEnd(20)} ${l.errorMessage.slice(0, 120)}`;
}

export const deadLettersCommand: Command = {
  summary: 'list dead letters, or replay them to their source topic after a fix (dead-letters list|replay)',
  help: `usage: emotionmuse dead-letters list [--code X] [--since 2h] [--topic all] [--json]
       emotionmuse dead-letters replay --code X [--dry-run]

list    prints every dead letter (time, stage, code, where it came from, its size, the reason).
replay  sends the dead letters with that code back to their source topics with their keys, once:
        each code's replay is a consumer group of its own whose offsets commit in the same Kafka
        transaction as the records it sends, so a second replay (or one after a crash) sends only
        dead letters it has not sent. Truncated dead letters (too large to keep whole) cannot be
        replayed and are counted.

options:
${configHelp(options)}`,
  async run(argv) {
    const { positionals } = parseArgv(argv);
    const sub = positionals[0];
    if (sub !== 'list' && sub !== 'replay') {
      console.log(this.help);
      return 2;
    }
    const c = loadConfig(options, { argv: argv.filter((a) => a !== sub) });
    if (sub === 'replay' && !c.code) {
      console.error('replay needs --code (the error you fixed)');
      return 2;
    }
    if (sub === 'replay' && c.since) {
      // A replay moves its code's group past every dead letter it reads: one it skipped for its
      // age would never be replayed later.
      console.error('replay takes every dead letter of its code not yet replayed; --since is for list');
      return 2;
    }
    const since = parseSince(c.since);
    const topology = deploymentTopology(c);
    const topics = (c.which === 'all' ? (['dead-letter', 'dead-letter-frames'] as const) : [c.which]).map((id) => topicName(topology, id));
    const registry = SchemaRegistry.load();
    const kafka = createKafka({ brokers: c.brokers, clientId: 'emotionmuse-dead-letters', security: kafkaSecurity(c, 'admin') });
    const wanted = (l: DeadLetter) => (!c.code || l.errorCode === c.code) && l.failedTimeMs >= since;

    if (sub === 'list') {
      let n = 0;
      for (const topic of topics) {
        await readToEnd(kafka, topic, `${c.topicPrefix}dead-letters-list-${randomUUID()}`, (partition, m) => {
          const letter = registry.decode('dead-letter', m.value!);
          if (!wanted(letter)) return;
          n++;
          const f = { topic, partition, offset: m.offset, letter };
          console.log(c.json ? JSON.stringify({ at: `${topic}[${partition}]@${m.offset}`, ...letter, key: letter.key?.toString('base64') ?? null, value: letter.value?.toString('base64') ?? null }) : describe(f));
        });
      }
      if (!c.json) console.log(`${n} dead letter(s)${c.code ? ` with code ${c.code}` : ''}${since ? ` since ${new Date(since).toISOString()}` : ''}`);
      return 0;
    }

    const counts = { sent: 0, truncated: 0, skipped: 0 };
    const framesTopic = topicName(topology, 'frames');
    const tokenFor = edgeTokens({ tokenFile: '', jwtSecretFile: c.jwtSecretFile });
    // (replay: every dead letter of the code, whatever its age)
    for (const topic of topics) {
      const groupId = `${c.topicPrefix}dead-letters-replay.${c.code}`;
      const producer = c.dryRun ? undefined : kafka.producer({ transactionalId: `${groupId}.${topic}`, idempotent: true, maxInFlightRequests: 1 });
      const partitions = ownPartitionTable(kafka);
      await producer?.connect();
      try {
        const batch: Array<{ partition: number; offset: string; letter: DeadLetter }> = [];
        await readToEnd(kafka, topic, groupId, (partition, m) => {
          const letter = registry.decode('dead-letter', m.value!);
          batch.push({ partition, offset: m.offset, letter });
        });
        const send = batch.filter((b) => wanted(b.letter));
        counts.skipped += batch.length - send.length;
        const whole = send.filter((b) => !b.letter.valueTruncated && b.letter.value !== null);
        counts.truncated += send.length - whole.length;
        for (const b of whole) console.log(`${c.dryRun ? 'would send' : 'sending'} ${describe({ topic, ...b })}`);
        if (producer && batch.length > 0) {
          const txn = await producer.transaction();
          try {
            const byTopic = new Map<string, Array<{ key: Buffer | null; value: Buffer; headers: Record<string, string> }>>();
            for (const b of whole) {
              const list = byTopic.get(b.letter.sourceTopic) ?? [];
              const token = b.letter.sourceTopic === framesTopic && b.letter.key ? await tokenFor(b.letter.key.toString()) : undefined;
              list.push({ key: b.letter.key, value: b.letter.value!, headers: { 'emotionmuse-replayed-from': `${topic}[${b.partition}]@${b.offset}`, ...frameTokenHeaders(token) } as Record<string, string> });
              byTopic.set(b.letter.sourceTopic, list);
            }
            if (byTopic.size > 0) await sendChecked(txn, partitions.table, [...byTopic].map(([t, messages]) => ({ topic: t, messages })));
            // Past every dead letter read, sent or not: the next replay of this code starts after them.
            const last = new Map<number, bigint>();
            for (const b of batch) last.set(b.partition, BigInt(b.offset) > (last.get(b.partition) ?? -1n) ? BigInt(b.offset) : last.get(b.partition)!);
            await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [...last].map(([partition, o]) => ({ partition, offset: (o + 1n).toString() })) }] });
            await txn.commit();
          } catch (err) {
            await txn.abort().catch(() => undefined);
            throw err;
          }
        }
        counts.sent += c.dryRun ? 0 : whole.length;
      } finally {
        await producer?.disconnect();
        await partitions.close();
      }
    }
    console.log(`${c.dryRun ? 'dry run: ' : ''}${counts.sent} sent back to their source topics, ${counts.truncated} truncated (not replayable), ${counts.skipped} of other codes`);
    return 0;
  },
};
