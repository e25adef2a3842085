import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../runtime/log.ts';
import type { SchemaRegistry } from '../schemas/registry.ts';
import type { ServerMessage } from './protocol.ts';
import { ownedPartitionsAssigner } from './routing.ts';

export type EventTopic = 'emotion-scores' | 'emotion-changes' | 'recommendations';

export interface FanoutOptions {
  readonly kafka: Kafka;
  readonly registry: SchemaRegistry;
  readonly groupPrefix: string;
  /** Full topic names by id. */
  readonly topics: Readonly<Record<EventTopic, string>>;
  /** Track titles and artists for the lists, when known. */
  readonly names?: (trackId: string) => { title: string; artist: string } | undefined;
  readonly logger: Logger;
  readonly onEvent?: (type: ServerMessage['type']) => void;
  /** Told when the consumer crashed (it is started again). */
  readonly onCrash?: () => void;
  /** A fetch waits at the broker for this many bytes, or `maxWaitMs`. @defaultValue 1 */
  readonly minBytes?: number;
  /** @defaultValue 20 */
  readonly maxWaitMs?: number;
  /** Tries of a failing fetch or handler before the consumer crashes (and is started again here). @defaultValue 5 */
  readonly retries?: number;
  /** First wait before a crashed consumer is started again; doubles up to 30 s. @defaultValue 1000 */
  readonly restartBackoffMs?: number;
  /** The partitions this instance reads (gateway/routing.ts); undefined reads them all. */
  readonly owned?: readonly number[];
}

type Listener = (message: ServerMessage) => void;

/**
 * How each gateway instance gets the events of the users connected to it: it reads the score,
 * change and list topics in a consumer group of its own, from the newest offset on: every
 * partition, or with routing (gateway/routing.ts) only the partitions of the users it serves. It
 * looks at each record's key (the user id) and decodes and forwards only the records of users
 * who have a socket here. Records of other users cost a key comparison. The cost and the
 * alternatives at 10,000 users are in gateway/README.md.
 */
export class Fanout {
  private consumer: Consumer;
  private readonly listeners = new Map<string, Set<Listener>>();
  private joined = false;
  private closed = false;
  /** Crashes since the consumer was last in its group (the restart backoff grows with them). */
  private crashes = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private lastCrash: string | undefined;
  private readonly byTopic: Map<string, EventTopic>;
  private readonly groupId: string;
  /** Records read, by partition number (every topic): what routing saves is seen here. */
  readonly recordsRead = new Map<number, number>();

  constructor(private readonly o: FanoutOptions) {
    this.byTopic = new Map(Object.entries(o.topics).map(([id, name]) => [name, id as EventTopic]));
    this.groupId = `${o.groupPrefix}gateway-${randomUUID()}`;
    this.consumer = this.newConsumer();
  }

  private newConsumer(): Consumer {
    return this.o.kafka.consumer({
      groupId: this.groupId,
      readUncommitted: false,
      maxWaitTimeInMs: this.o.maxWaitMs ?? 20,
      minBytes: this.o.minBytes ?? 1,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      // A crash is handled here, one way: not ready, then a new consumer after a backoff.
      retry: { retries: this.o.retries ?? 5, restartOnFailure: async () => false },
      ...(this.o.owned ? { partitionAssigners: [ownedPartitionsAssigner(this.o.owned)] } : {}),
    });
  }

  /** In its group and consuming. False from a crash until the restarted consumer joins (/readyz fails meanwhile). */
  get ready(): boolean {
    return this.joined;
  }

  /** Why the fan-out is not ready, for /readyz. */
  get reason(): string {
    return this.lastCrash ? `fan-out consumer crashed (${this.lastCrash}); restarting` : 'fan-out consumer not in its group yet';
  }

  /** Users with at least one listener here. */
  get users(): number {
    return this.listeners.size;
  }

  async start(): Promise<void> {
    const consumer = this.consumer;
    const joined = new Promise<void>((resolve) =>
      consumer.on(consumer.events.GROUP_JOIN, () => {
        this.joined = true;
        this.crashes = 0;
        this.lastCrash = undefined;
        resolve();
      }),
    );
    consumer.on(consumer.events.CRASH, (e) => this.crashed(consumer, e.payload.error));
    await consumer.connect();
    await consumer.subscribe({ topics: Object.values(this.o.topics), fromBeginning: false });
    await consumer.run({
      partitionsConsumedConcurrently: 3,
      eachMessage: async ({ topic, partition, message }) => {
        this.recordsRead.set(partition, (this.recordsRead.get(partition) ?? 0) + 1);
        if (!message.key || !message.value || this.listeners.size === 0) return;
        const set = this.listeners.get(message.key.toString());
        if (!set) return;
        const event = this.toMessage(this.byTopic.get(topic)!, message.value);
        if (!event) return;
        this.o.onEvent?.(event.type);
        for (const l of set) l(event);
      },
    });
    await joined;
  }

  /** A dead consumer is not ready at once (/readyz fails), and a new one starts after a backoff. */
  private crashed(consumer: Consumer, error: Error): void {
    if (consumer !== this.consumer || this.closed) return;
    this.joined = false;
    this.crashes++;
    this.lastCrash = String(error).slice(0, 200);
    const backoffMs = Math.min(30_000, (this.o.restartBackoffMs ?? 1000) * 2 ** (this.crashes - 1));
    this.o.logger.error('fan-out consumer crashed; starting a new one', { error: this.lastCrash, attempt: this.crashes, inMs: backoffMs });
    this.o.onCrash?.();
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      void (async () => {
        await consumer.disconnect().catch(() => undefined);
        if (this.closed) return;
        this.consumer = this.newConsumer();
        await this.start();
      })().catch((err: unknown) => this.crashed(this.consumer, err instanceof Error ? err : new Error(String(err))));
    }, backoffMs);
    this.restartTimer.unref();
  }

  /** Whether `userId` has a listener here. */
  has(userId: string): boolean {
    return this.listeners.has(userId);
  }

  /** Sends `userId`'s events to `listener` until the returned function is called. */
  listen(userId: string, listener: Listener): () => void {
    let set = this.listeners.get(userId);
    if (!set) this.listeners.set(userId, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0) this.listeners.delete(userId);
    };
  }

  private toMessage(topic: EventTopic, value: Buffer): ServerMessage | undefined {
    try {
      if (topic === 'emotion-scores') {
        const s = this.o.registry.decode('emotion-score', value);
        return { type: 'score', seq: s.seq, captureTimeMs: s.captureTimeMs, faceFound: s.faceFound, probabilities: s.probabilities, scoredAt: s.scoredAt, processedTimeMs: s.processedTimeMs };
      }
      if (topic === 'emotion-changes') {
        const c = this.o.registry.decode('emotion-change', value);
        return { type: 'change', previousLabel: c.previousLabel, label: c.label, probabilities: c.probabilities, valence: c.valence, arousal: c.arousal, windowIndex: c.windowIndex, windowEndSeq: c.windowEndSeq, captureTimeMs: c.captureTimeMs, emittedTimeMs: c.emittedTimeMs, scheme: c.scheme, confidence: c.confidence };
      }
      const r = this.o.registry.decode('recommendation', value);
      return {
        type: 'list',
        listId: r.listId,
        trigger: r.trigger,
        createdTimeMs: r.createdTimeMs,
        emotion: r.emotion ? { label: r.emotion.label, valence: r.emotion.valence, arousal: r.emotion.arousal } : null,
        items: r.items.map((it) => ({ ...it, ...this.o.names?.(it.trackId) })),
      };
    } catch (err) {
      // A record the pipeline wrote that this gateway cannot read: its users miss one event.
      this.o.logger.warn('undecodable event record', { topic, error: String(err) });
      return undefined;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.joined = false;
    await this.consumer.disconnect();
  }
}
