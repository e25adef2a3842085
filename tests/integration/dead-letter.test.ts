import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { topicName } from '../../topology/topology.ts';
import { frame, registry } from '../support/frames.ts';
import { collect, createTopology, metricSum, metricsText, produce, randomPrefix, startProcessor, useKafka, waitFor } from '../support/kafka.ts';

describe('dead letters', () => {
  const fx = useKafka();

  it('sends bad records to the dead-letter topic with source coordinates and code, and keeps processing', async () => {
    const prefix = randomPrefix('dlq');
    const topology = await createTopology(fx.admin, prefix, 1);
    const garbage = Buffer.from('this is not an avro message at all');
    const wrongKind = registry.encode('listen', { listenId: 'l', userId: 'u', trackId: 't', startTimeMs: 0, listenedMs: 0, outcome: 'COMPLETED' });
    const empty = registry.encode('frame', frame('u', 3, { data: Buffer.alloc(0) }));
    const oversized = registry.encode('frame', frame('u', 5, { encoding: 'JPEG', data: Buffer.alloc(5000, 1) }));
    const inputs = [
      registry.encode('frame', frame('u', 1)),
      garbage,
      registry.encode('frame', frame('u', 2)),
      wrongKind,
      empty,
      registry.encode('frame', frame('u', 4)),
      oversized,
      registry.encode('frame', frame('u', 6)),
    ];
    await produce(fx.kafka, topicName(topology, 'frames'), inputs.map((value) => ({ key: 'u', value })));
    // A frame whose key is another user, and one without a key: the key is the record's identity.
    await produce(fx.kafka, topicName(topology, 'frames'), [{ key: 'kx', value: registry.encode('frame', frame('u', 7)) }, { key: null, value: registry.encode('frame', frame('u', 8)) }]);
    const reader = await collect(fx.kafka, [topicName(topology, 'passthrough'), topicName(topology, 'dead-letter-frames')]);
    const p = await startProcessor('passthrough', { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_MAX_RECORD_BYTES: '2048' });
    try {
      await waitFor('4 outputs and 6 dead letters', () => reader.records.length >= 10, 60_000);
      const outputs = reader.records.filter((r) => r.topic === topicName(topology, 'passthrough')).map((r) => registry.decode('frame', r.value!).seq);
      expect(outputs).toEqual([1, 2, 4, 6]);

      const letters = reader.records.filter((r) => r.topic === topicName(topology, 'dead-letter-frames')).map((r) => registry.decode('dead-letter', r.value!));
      letters.sort((x, y) => x.sourceOffset - y.sourceOffset);
      expect(letters.map((l) => [l.sourceOffset, l.errorCode])).toEqual([
        [1, 'NOT_SINGLE_OBJECT'],
        [3, 'WRONG_SCHEMA_KIND'],
        [4, 'UNDECODABLE_FRAME'],
        [6, 'OVERSIZED_RECORD'],
        [8, 'INVALID_RECORD'],
        [9, 'INVALID_RECORD'],
      ]);
      expect(letters[4]!.errorMessage).toMatch(/key "kx" is not the record's user "u"/);
      expect(letters[5]!.errorMessage).toMatch(/has no key/);
      const allInputs = [...inputs, registry.encode('frame', frame('u', 7)), registry.encode('frame', frame('u', 8))];
      for (const l of letters) {
        expect(l).toMatchObject({ sourceTopic: topicName(topology, 'frames'), sourcePartition: 0, stage: 'passthrough' });
        expect(l.value).toEqual(allInputs[l.sourceOffset]);
        if (l.sourceOffset < 8) expect(l.key?.toString()).toBe('u');
        expect(l.errorMessage.length).toBeGreaterThan(0);
      }
      const metrics = await metricsText(p.port);
      expect(metricSum(metrics, 'emotionmuse_dead_letters_total', 'code="NOT_SINGLE_OBJECT"')).toBe(1);
      expect(metricSum(metrics, 'emotionmuse_dead_letters_total')).toBe(6);

      // `emotionmuse dead-letters`: list them, and replay one code to the source topic, once.
      // (The processor stops first: a replayed record it refused again would be a new dead letter.)
      p.proc.kill('SIGTERM');
      await p.exited;
      const run = async (...args: string[]) => {
        const printed: string[] = [];
        const log = console.log;
        console.log = (...a: unknown[]) => printed.push(a.join(' '));
        try {
          const code = await main(['dead-letters', ...args, '--topic-prefix', prefix, '--partitions', '1']);
          return { code, text: printed.join('\n') };
        } finally {
          console.log = log;
        }
      };
      const listed = await run('list');
      expect(listed.code).toBe(0);
      expect(listed.text).toMatch(/6 dead letter\(s\)/);
      expect(listed.text).toMatch(/passthrough\s+UNDECODABLE_FRAME\s+\S+frames\.v1\[0\]@4/);
      expect((await run('list', '--code', 'INVALID_RECORD')).text).toMatch(/2 dead letter\(s\) with code INVALID_RECORD/);
      expect((await run('list', '--since', '2000-01-01T00:00Z', '--json')).text.split('\n').map((l) => JSON.parse(l).errorCode)).toHaveLength(6);
      expect((await run('replay', '--code', 'INVALID_RECORD', '--dry-run')).text).toMatch(/dry run: 0 sent back/);
      const replayed = await run('replay', '--code', 'INVALID_RECORD');
      expect(replayed.text).toMatch(/2 sent back to their source topics, 0 truncated \(not replayable\), 4 of other codes/);
      expect((await run('replay', '--code', 'INVALID_RECORD')).text).toMatch(/0 sent back/);
      const frames = await collect(fx.kafka, [topicName(topology, 'frames')]);
      await waitFor('the two replayed frames', () => frames.records.length >= 12, 20_000);
      await frames.stop();
      const back = frames.records.filter((r) => r.headers['emotionmuse-replayed-from']);
      // (the keyless one went to any partition: compare without order)
      expect(back.map((r) => [r.key, r.value]).sort((a, b) => String(b[0]).localeCompare(String(a[0])))).toEqual([['kx', allInputs[8]], ['', allInputs[9]]]);
      expect(back.map((r) => r.headers['emotionmuse-replayed-from'])).toEqual([expect.stringMatching(/dead-letter-frames\.v1\[\d\]@\d+$/), expect.stringMatching(/dead-letter-frames\.v1\[\d\]@\d+$/)]);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  });
});
