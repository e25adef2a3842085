import type { Message, TopicMessages } from 'kafkajs';

/**
 * Bytes of records per produce request at most: under the broker's default message.max.bytes
 * (1 MiB), which bounds each partition's batch, with room for a dead letter of the largest kept
 * value (256 KiB by default) beside others. A request over the limit is refused, and an
 * idempotent producer cannot go on after it (its sequence numbers no longer match).
 */
export const REQUEST_BYTES = 768 * 1024;

/** kafkajs takes one entry per topic in a send (a second one would replace the first). */
export function mergeByTopic(topicMessages: readonly TopicMessages[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const { topic, messages } of topicMessages) {
    const list = byTopic.get(topic);
    if (list) list.push(...messages);
    else byTopic.set(topic, [...messages]);
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

/** Splits topic messages into requests of at most `maxBytes` of keys and values (a larger record goes alone). */
export function splitBySize(topicMessages: readonly TopicMessages[], maxBytes: number): TopicMessages[][] {
  const parts: TopicMessages[][] = [];
  let current = new Map<string, Message[]>();
  let bytes = 0;
  for (const { topic, messages } of topicMessages) {
    for (const m of messages) {
      const size = (m.value ? (m.value as Buffer).length : 0) + (m.key ? (m.key as Buffer).length : 0) + 64;
      if (bytes > 0 && bytes + size > maxBytes) {
        parts.push([...current].map(([t, ms]) => ({ topic: t, messages: ms })));
        current = new Map();
        bytes = 0;
      }
      const list = current.get(topic) ?? [];
      list.push(m);
      current.set(topic, list);
      bytes += size;
    }
  }
  if (bytes > 0) parts.push([...current].map(([t, ms]) => ({ topic: t, messages: ms })));
  return parts;
}

/** Topic messages of an outcome's map (topic name -> messages), for a send. */
export const topicMessagesOf = (out: ReadonlyMap<string, Message[]>): TopicMessages[] => [...out].map(([topic, messages]) => ({ topic, messages }));
