import kafkajs, { type Admin } from 'kafkajs';

const { ConfigResourceTypes } = kafkajs;
import { allTopics, type Topology, type TopicSpec } from './topology.ts';

/**
 * Why `spec`'s partition count must not grow in place, or undefined when it may. A key's
 * partition is its hash modulo the count: more partitions send most keys to another partition.
 * A changelog, or a topic a stateful processor reads, holds each key's state on the partition of
 * its key; after the change the key's records arrive where its state is not, and the state is
 * lost or split. A topic read only by stateless stages (the recommender keeps its per-user state
 * in Redis) can grow: its consumers take the new partitions at the next rebalance. A user whose
 * key moves may have records on the old partition not yet read when the first one on the new
 * partition is: their order can break once, at the change.
 */
export function growthRefusal(topology: Topology, spec: TopicSpec): string | undefined {
  if (spec.id === 'changelog') return 'a changelog holds each key\'s state on the partition of its key';
  const stateful = topology.processors.filter((p) => p.stateful && p.inputs.includes(spec.id as never)).map((p) => p.name);
  if (stateful.length > 0) return `${stateful.join(' and ')} keep${stateful.length === 1 ? 's' : ''} each key's state by partition of this topic`;
  return undefined;
}

export type TopicAction =
  | { kind: 'created'; topic: string }
  | { kind: 'unchanged'; topic: string }
  | { kind: 'config-updated'; topic: string; changes: string[] }
  | { kind: 'grown'; topic: string; from: number; to: number }
  | { kind: 'drift'; topic: string; problems: string[] };

/** The topic configuration the topology declares for `spec` (also what the Kubernetes KafkaTopics carry). */
export function desiredConfig(spec: TopicSpec): Record<string, string> {
  const config: Record<string, string> = { 'retention.ms': String(spec.retentionMs), 'cleanup.policy': spec.cleanupPolicy, 'message.timestamp.type': spec.timestampType, 'segment.ms': String(spec.segmentMs) };
  // compaction may wait at most a segment's time: old values of a key (a forgotten user's) do not linger
  if (spec.cleanupPolicy.includes('compact')) config['max.compaction.lag.ms'] = String(spec.segmentMs);
  // Replicated topics take a write (acks=all) once all but one replica have it: one broker may
  // be lost without losing an acknowledged record or stopping writes.
  if (spec.replicationFactor > 1) config['min.insync.replicas'] = String(spec.replicationFactor - 1);
  return config;
}

/** Waits until every partition of `topics` has a leader (30 s at most), retrying metadata errors. */
export async function waitForLeaders(admin: Admin, topics: readonly string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no metadata yet';
  while (Date.now() < deadline) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics: [...topics] });
      const leaderless = meta.flatMap((t) => t.partitions.filter((p) => p.leader < 0).map((p) => `${t.name}[${p.partitionId}]`));
      if (meta.length === topics.length && leaderless.length === 0) return;
      last = leaderless.length > 0 ? `no leader yet for ${leaderless.slice(0, 5).join(', ')}` : 'some topics not in the metadata yet';
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`topics created but not ready within ${timeoutMs / 1000} s: ${last}`);
}

/**
 * Makes the cluster match the topology without destroying data: creates missing topics, reports
 * drift in partition count or replication (never changed here: more partitions would move keys),
 * and, with `fixConfig`, sets retention, cleanup policy and timestamp type back to the declared values.
 * With `growPartitions`, a topic with fewer partitions than declared grows to the declared count
 * where growthRefusal allows it; a keyed stateful one is refused with the reason and what to do.
 * Running it twice reports only `unchanged` the second time.
 */
export async function applyTopology(admin: Admin, topology: Topology, options: { fixConfig?: boolean; growPartitions?: boolean } = {}): Promise<TopicAction[]> {
  const specs = allTopics(topology);
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.name));
  const actions: TopicAction[] = [];
  if (missing.length > 0) {
    await admin.createTopics({
      // kafkajs's own wait lets UNKNOWN_TOPIC_OR_PARTITION from a just-started broker escape as
      // an unhandled rejection; waitForLeaders below retries it instead.
      waitForLeaders: false,
      topics: missing.map((s) => ({
        topic: s.name,
        numPartitions: s.partitions,
        replicationFactor: s.replicationFactor,
        configEntries: Object.entries(desiredConfig(s)).map(([name, value]) => ({ name, value })),
      })),
    });
    await waitForLeaders(admin, missing.map((s) => s.name));
    for (const s of missing) actions.push({ kind: 'created', topic: s.name });
  }
  const present = specs.filter((s) => existing.has(s.name));
  if (present.length === 0) return actions;

  const metadata = await admin.fetchTopicMetadata({ topics: present.map((s) => s.name) });
  const configs = await admin.describeConfigs({
    includeSynonyms: false,
    resources: present.map((s) => ({ type: ConfigResourceTypes.TOPIC, name: s.name, configNames: Object.keys(desiredConfig(s)) })),
  });
  for (const spec of present) {
    const meta = metadata.topics.find((t) => t.name === spec.name);
    const problems: string[] = [];
    const partitions = meta?.partitions.length ?? 0;
    let grown: TopicAction | undefined;
    if (partitions < spec.partitions && options.growPartitions) {
      const refusal = growthRefusal(topology, spec);
      if (refusal) {
        problems.push(`partitions: declared ${spec.partitions}, found ${partitions}; not grown: ${refusal}, and more partitions move most keys to another one. Size it before the first deployment, or move to a new version of the topic with the new count (a new topic name; the stateful stage rebuilds its state there)`);
      } else {
        await admin.createPartitions({ validateOnly: false, topicPartitions: [{ topic: spec.name, count: spec.partitions }] });
        grown = { kind: 'grown', topic: spec.name, from: partitions, to: spec.partitions };
      }
    } else if (partitions !== spec.partitions) {
      problems.push(`partitions: declared ${spec.partitions}, found ${partitions} (not changed: repartitioning moves keys${partitions < spec.partitions && !growthRefusal(topology, spec) ? '; --grow-partitions grows this one, which no stateful stage reads' : '; migrate to a new topic version'})`);
    }
    const replicas = meta?.partitions[0]?.replicas.length ?? 0;
    if (replicas !== spec.replicationFactor) problems.push(`replication factor: declared ${spec.replicationFactor}, found ${replicas} (not changed)`);

    const resource = configs.resources.find((r) => r.resourceName === spec.name);
    const want = desiredConfig(spec);
    const configDiffs = Object.entries(want)
      .map(([name, value]) => ({ name, value, found: resource?.configEntries.find((c) => c.configName === name)?.configValue }))
      .filter((c) => c.found !== c.value)
      .map((c) => `${c.name}: ${c.found} -> ${c.value}`);
    if (configDiffs.length > 0 && options.fixConfig) {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: spec.name, configEntries: Object.entries(want).map(([name, value]) => ({ name, value })) }],
      });
    } else {
      problems.push(...configDiffs.map((d) => `${d} wanted (run with --fix-config to set it)`));
    }
    if (problems.length > 0) actions.push({ kind: 'drift', topic: spec.name, problems });
    else if (grown) actions.push(grown);
    else if (configDiffs.length > 0) actions.push({ kind: 'config-updated', topic: spec.name, changes: configDiffs });
    else actions.push({ kind: 'unchanged', topic: spec.name });
  }
  return actions;
}

export function formatActions(actions: readonly TopicAction[]): string {
  return actions
    .map((a) => {
      switch (a.kind) {
        case 'created': return `created    ${a.topic}`;
        case 'unchanged': return `unchanged  ${a.topic}`;
        case 'config-updated': return `updated    ${a.topic}: ${a.changes.join('; ')}`;
        case 'grown': return `grown      ${a.topic}: ${a.from} -> ${a.to} partitions`;
        case 'drift': return `DRIFT      ${a.topic}:\n${a.problems.map((p) => `             - ${p}`).join('\n')}`;
      }
    })
    .join('\n');
}

function formatRetention(ms: number): string {
  if (ms < 0) return 'forever';
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  return `${ms}ms`;
}

/** The layout as a table, and the processor graph below it. */
export function describeTopology(topology: Topology): string {
  const specs = allTopics(topology);
  const header = ['topic', 'partitions', 'rf', 'retention', 'cleanup', 'timestamps', 'key', 'value'];
  const rows = specs.map((s) => [s.name, String(s.partitions), String(s.replicationFactor), formatRetention(s.retentionMs), s.cleanupPolicy, s.timestampType, s.key, s.valueKind]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const processors = topology.processors.map(
    (p) => `  ${p.name}: ${p.inputs.join(' + ')} -> ${p.outputs.join(', ')}, ${p.guarantee}${p.stateful ? ` (state: ${p.name}.state-${p.stateVersion ?? 'v1'}.changelog)` : ''}\n      ${p.description}`,
  );
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '', 'processors:', ...processors].join('\n');
}
