import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka, producerIsBroken } from '../../runtime/kafka.ts';
import { PartitionTable, sendChecked } from '../../runtime/checked-send.ts';
import { applyTopology } from '../../topology/apply.ts';
import { buildTopology, topicName } from '../../topology/topology.ts';
import { keyedFrames, registry } from '../support/frames.ts';
import { readCommittedWithJava } from '../support/committed-reader.ts';
import { collect, startProcessor, waitFor } from '../support/kafka.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
// Ports of the test's own three nodes, away from the single broker the other suites use.
const BASE_PORT = Number(process.env.EM_TEST_CLUSTER_PORT ?? 19_092);
const NODES = [1, 2, 3];
const USERS = 30;
const PER_USER = 200;

/** The test's own 3-node KRaft cluster, through the launcher. */
class Cluster {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'em-cluster-'));
  readonly brokers = NODES.map((i) => `127.0.0.1:${BASE_PORT + 2 * (i - 1)}`);

  launcher(...args: string[]): string {
    const r = spawnSync('bash', [path.join(ROOT, 'infra/local.sh'), ...args], { env: { ...process.env, EM_DATA_DIR: this.dir, EM_KAFKA_PORT: String(BASE_PORT) }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`infra/local.sh ${args.join(' ')} failed: ${r.stderr}`);
    return r.stderr;
  }

  /** Starts the nodes that are not running. */
  up(): void {
    this.launcher('up', 'kafka', '--brokers', '3');
  }

  kill(node: number): void {
    process.kill(Number(readFileSync(path.join(this.dir, 'kafka-cluster', `node-${node}`, 'kafka.pid'), 'utf8')), 'SIGKILL');
  }

  /** The node leading the KRaft quorum (the active controller): the latest leader epoch in the nodes' logs. */
  activeController(): number {
    let best = { node: 0, epoch: -1 };
    for (const node of NODES) {
      const dir = path.join(this.dir, 'kafka-cluster', `node-${node}`);
      for (const f of readdirSync(dir).filter((n) => n.startsWith('server.log'))) {
        for (const m of readFileSync(path.join(dir, f), 'utf8').matchAll(/\[RaftManager id=(\d+)\] Completed transition to Leader\(.*?epoch=(\d+)/g)) {
          if (Number(m[2]) > best.epoch) best = { node: Number(m[1]), epoch: Number(m[2]) };
        }
      }
    }
    if (best.epoch < 0) throw new Error('no node has led the quorum yet');
    return best.node;
  }
}

async function leaderOf(admin: Admin, topic: string, partition: number): Promise<number> {
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  return meta.topics[0]!.partitions.find((p) => p.partitionId === partition)!.leader;
}

describe('a 3-broker cluster (replication factor 3, min.insync.replicas 2)', () => {
  const cluster = new Cluster();
  let kafka: Kafka;
  let admin: Admin;

  beforeAll(async () => {
    cluster.up();
    kafka = createKafka({ brokers: cluster.brokers, clientId: 'emotionmuse-cluster-test' });
    admin = kafka.admin();
    await admin.connect();
  }, 180_000);

  afterAll(async () => {
    await admin?.disconnect().catch(() => undefined);
    cluster.launcher('down', 'kafka');
  });

  it('keeps processing through a SIGKILL of a busy partition\'s leader and then of the active controller: every acknowledged frame is stored and comes out exactly once, in per-key order, in the Java client\'s view and in kafkajs\'s', async () => {
    const prefix = `test.cluster.${Date.now()}.`;
    const topology = buildTopology({ prefix, partitions: 3, replicationFactor: 3 });
    await applyTopology(admin, topology);
    // A new topic's partitions reach every broker's metadata a moment after its creation.
    const configs = await waitFor('the new topics on every broker', () =>
      admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: topicName(topology, 'frames'), configNames: ['min.insync.replicas'] }] }).catch(() => undefined), 30_000);
    expect(configs.resources[0]!.configEntries[0]!.configValue).toBe('2');
    await new Promise((r) => setTimeout(r, 2000));

    const reader = await collect(kafka, [topicName(topology, 'passthrough')]);
    const p = await startProcessor('passthrough', { EM_KAFKA_BROKERS: cluster.brokers.join(','), EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_REPLICATION_FACTOR: '3' });
    // The load generator sends as the gateway does: an idempotent producer whose sends are
    // checked (a plain kafkajs send lost a partition's share of a chunk across the leader's
    // SIGKILL: runtime/checked-send.ts).
    const table = new PartitionTable(admin);
    const newProducer = () => kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 10 } });
    let producer = newProducer();
    await producer.connect();
    const frames = keyedFrames(USERS, PER_USER);
    const faults: string[] = [];
    try {
      // The stream flows for about 20 s while the faults happen. A chunk the broker may or may not
      // have taken when its leader died is sent again (the pass-through drops the repeats: it
      // remembers each session's sequence numbers).
      const sending = (async () => {
        for (let i = 0; i < frames.length; i += 100) {
          for (let attempt = 1; ; attempt++) {
            try {
              await sendChecked(producer, table, [{ topic: topicName(topology, 'frames'), messages: frames.slice(i, i + 100) }]);
              break;
            } catch (err) {
              if (attempt >= 10) throw err;
              faults.push(`the load generator resent a chunk (${producerIsBroken(err) ? 'new producer' : 'retry'})`);
              if (producerIsBroken(err)) {
                await producer.disconnect().catch(() => undefined);
                producer = newProducer();
                await producer.connect();
              }
              await new Promise((r) => setTimeout(r, 500));
            }
          }
          await new Promise((r) => setTimeout(r, 330));
        }
      })();
      await waitFor('outputs flowing', () => reader.records.length > 300, 60_000);
      const leader = await leaderOf(admin, topicName(topology, 'frames'), 0);
      cluster.kill(leader);
      faults.push(`killed node ${leader}, leader of frames[0], at ${reader.records.length} outputs`);
      await new Promise((r) => setTimeout(r, 4000));
      cluster.up();
      faults.push(`restarted node ${leader}`);
      await new Promise((r) => setTimeout(r, 4000));
      const controller = cluster.activeController();
      cluster.kill(controller);
      faults.push(`killed node ${controller}, the active controller, at ${reader.records.length} outputs`);
      await new Promise((r) => setTimeout(r, 4000));
      cluster.up();
      faults.push(`restarted node ${controller}`);
      await sending;
      // The pipeline's guarantee starts at the frames topic: read what it holds, then wait for
      // every one of those records to come out.
      // Read the frames topic to its end (every partition's high watermark), not to a count.
      const ends = new Map((await admin.fetchTopicOffsets(topicName(topology, 'frames'))).map((o) => [o.partition, Number(o.high)]));
      const inputs = await collect(kafka, [topicName(topology, 'frames')]);
      const readTo = () => {
        const last = new Map<number, number>();
        for (const r of inputs.records) last.set(r.partition, Math.max(last.get(r.partition) ?? -1, Number(r.offset)));
        return [...ends].every(([p, high]) => high === 0 || (last.get(p) ?? -1) >= high - 1);
      };
      await waitFor('the frames topic read to its end', readTo, 60_000);
      await inputs.stop();
      const id = (r: { value: Buffer | null }) => {
        const f = registry.decode('frame', r.value!);
        return { key: `${f.userId}/${f.seq}`, user: f.userId, seq: f.seq };
      };
      const counts = (rs: ReadonlyArray<{ value: Buffer | null }>) => {
        const m = new Map<string, number>();
        for (const r of rs) m.set(id(r).key, (m.get(id(r).key) ?? 0) + 1);
        return m;
      };
      // kafkajs's group consumer hands records out again after it restarts (from its last
      // auto-commit, when a broker it fetched from died): one record per log position.
      const distinct = <T extends { partition: number; offset: string }>(rs: readonly T[]) => [...new Map(rs.map((r) => [`${r.partition}@${r.offset}`, r])).values()];
      const inCount = counts(distinct(inputs.records));
      await waitFor('every input record out', () => [...inCount.keys()].every((k) => counts(reader.records).has(k)), 90_000, 500).catch((err: unknown) => {
        mkdirSync(ARTIFACTS, { recursive: true });
        writeFileSync(path.join(ARTIFACTS, 'cluster-passthrough.log'), p.logs.join(''));
        const out = counts(reader.records);
        throw new Error(`${String(err)}: ${[...inCount.keys()].filter((k) => !out.has(k)).length} input records not out; ${faults.join('; ')}; log in tests/artifacts/cluster-passthrough.log`);
      });
      await new Promise((r) => setTimeout(r, 2000));
      const outCount = counts(distinct(reader.records));
      const sentKeys = frames.map((m) => id({ value: m.value as Buffer }).key);
      const missing = sentKeys.filter((k) => !inCount.has(k));
      // The pass-through forwards each frame once (it drops a repeated sequence number), so under
      // exactly-once every distinct frame comes out exactly once.
      const repeated = [...outCount].filter(([, n]) => n > 1);
      const redelivered = reader.records.length - distinct(reader.records).length;
      // The Java client's read_committed view of both topics: a second opinion on what was lost or repeated.
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(path.join(ARTIFACTS, 'cluster-passthrough.log'), p.logs.join(''));
      const javaIn = counts(readCommittedWithJava(cluster.brokers, topicName(topology, 'frames')));
      const javaOut = counts(readCommittedWithJava(cluster.brokers, topicName(topology, 'passthrough')));
      const javaRepeated = [...javaOut].filter(([, n]) => n > 1);
      const javaNotOut = [...javaIn.keys()].filter((k) => !javaOut.has(k));
      console.log(`[cluster] Java read_committed view: frames ${[...javaIn.values()].reduce((a, b) => a + b, 0)} records (${javaIn.size} distinct), passthrough ${[...javaOut.values()].reduce((a, b) => a + b, 0)} (${javaOut.size} distinct), ${javaRepeated.length} out more than once, ${javaNotOut.length} in but not out`);
      console.log(`[cluster] ${faults.join('; ')}; the frames topic holds ${distinct(inputs.records).length} records (${inCount.size} distinct of ${frames.length} sent: ${missing.length} acked sends missing${missing.length > 0 ? `: ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}, chunks ${[...new Set(missing.map((k) => Math.floor(sentKeys.indexOf(k) / 100)))].join(', ')}` : ''}); kafkajs read_committed: ${distinct(reader.records).length} outputs at distinct offsets (${redelivered} handed out again after a consumer restart), ${repeated.length} frames out more than once (${repeated.slice(0, 5).map(([k, n]) => `${k} x${n}`).join(', ') || 'none'})`);
      if (repeated.length > 0) {
        // Where the copies lie: output partition and offset of each, and their record times.
        const at = new Map<string, string[]>();
        for (const r of distinct(reader.records)) at.set(id(r).key, [...(at.get(id(r).key) ?? []), `${r.partition}@${r.offset} t=${new Date(r.timestamp).toISOString().slice(11, 23)}`]);
        const offsets = repeated.flatMap(([k]) => at.get(k)!.map((s) => s.split(' ')[0]!));
        console.log(`[cluster] repeated frames, first copies and repeats: ${repeated.slice(0, 8).map(([k]) => `${k}: ${at.get(k)!.join(' / ')}`).join('; ')}; offsets ${[0, 1, 2].map((part) => { const os = offsets.filter((o) => o.startsWith(`${part}@`)).map((o) => Number(o.split('@')[1])); return os.length ? `[${part}] ${Math.min(...os)}-${Math.max(...os)} (${os.length})` : `[${part}] none`; }).join(', ')}`);
      }
      // No acknowledged send is lost, nothing is made up, and every frame comes out exactly once,
      // in the Java client's view and in kafkajs's.
      expect(missing, 'acknowledged sends missing from the frames topic').toEqual([]);
      expect([...outCount.keys()].filter((k) => !inCount.has(k))).toEqual([]);
      expect(javaNotOut, 'frames not out (Java read_committed)').toEqual([]);
      expect(javaRepeated.map(([k]) => k), 'frames out more than once (Java read_committed)').toEqual([]);
      expect(repeated.map(([k]) => k), 'frames out more than once (kafkajs read_committed, one record per offset)').toEqual([]);
      // In per-key order: each user's first outputs come in sequence order.
      const firsts = new Map<string, number[]>();
      const once = new Set<string>();
      for (const r of reader.records) {
        const f = id(r);
        if (once.has(f.key)) continue;
        once.add(f.key);
        firsts.set(f.user, [...(firsts.get(f.user) ?? []), f.seq]);
      }
      for (const [user, seqs] of firsts) expect(seqs.every((x, i) => i === 0 || x > seqs[i - 1]!), user).toBe(true);
      expect((await fetch(`http://127.0.0.1:${p.port}/readyz`)).status).toBe(200);
    } finally {
      await producer.disconnect().catch(() => undefined);
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  }, 300_000);
});
