import { EmotionMuseError } from '../../schemas/errors.ts';
import { authorizeUser } from '../../auth/http.ts';
import type { TokenVerifier } from '../../auth/tokens.ts';
import type { RouteHandler } from '../../runtime/http.ts';
import type { Metrics } from '../../runtime/metrics.ts';
import type { InputRecord, ProcessorCore } from '../../runtime/processor.ts';
import type { Emotion, EmotionChange, Listen, Recommendation } from '../../schemas/generated/types.ts';
import type { Scorer } from './scorer.ts';
import type { UserStore } from './store.ts';

export interface RecommenderConfig {
  /** Weight of preference against emotion compatibility in the final score. @defaultValue 0.7 */
  readonly lambda: number;
  /** Tracks per published list. @defaultValue 10 */
  readonly topK: number;
  /** Listens refresh a user's list at most once per this many ms (of listen time). @defaultValue 30000 */
  readonly refreshIntervalMs: number;
  /** How long a record's output is kept to answer a redelivery identically. @defaultValue 3600 */
  readonly outputCacheSeconds: number;
}

export const DEFAULT_RECOMMENDER_CONFIG: RecommenderConfig = { lambda: 0.7, topK: 10, refreshIntervalMs: 30_000, outputCacheSeconds: 3600 };

const UNIFORM = Array.from({ length: 7 }, () => 1 / 7);

/**
 * emotion-changes + listens -> recommendations, with per-user state in Redis. Every Redis update
 * is fenced by the record's source offset (a redelivered record is not applied twice) and the
 * list a record produced is kept for an hour, so that a redelivery publishes the same list.
 */
export function createRecommenderCore(deps: { scorer: Scorer; store: UserStore; config?: RecommenderConfig; metrics?: Metrics; verifier?: TokenVerifier }): ProcessorCore<never, Recommendation | null> & { routes: RouteHandler[] } {
  const { scorer, store, metrics } = deps;
  const config = deps.config ?? DEFAULT_RECOMMENDER_CONFIG;
  const step = (name: string, ms: number) => metrics?.stepSeconds.observe({ stage: 'recommender', step: name }, ms / 1000);

  async function buildList(record: InputRecord, user: string, trigger: Recommendation['trigger']): Promise<Recommendation> {
    const state = await store.read(user);
    const emotion = state.emotion;
    const probabilities = emotion?.probabilities ?? UNIFORM;
    const history = state.history.map((id) => scorer.catalogue.indexOf.get(id)).filter((i): i is number => i !== undefined);
    let items;
    if (history.length === 0) {
      items = scorer.coldStart(probabilities, config.topK);
      metrics?.coldStarts.inc();
    } else {
      const t0 = performance.now();
      const [scored] = await scorer.candidates([{ history, probabilities }]);
      step('score', performance.now() - t0);
      const t1 = performance.now();
      items = scorer.rerank(scored!.candidates, scored!.embedding, config.lambda, config.topK);
      step('rerank', performance.now() - t1);
    }
    const source = `${record.topicName}:${record.partition}`;
    return {
      listId: `${user}:${source}:${record.offset}`,
      userId: user,
      trigger,
      causeId: `${record.topicName}/${record.partition}/${record.offset}`,
      emotion: emotion ? { label: emotion.label as Emotion, probabilities: emotion.probabilities, valence: emotion.valence, arousal: emotion.arousal } : null,
      items: items.map((it, rank) => ({ trackId: scorer.catalogue.ids[it.index]!, rank: rank + 1, finalScore: it.finalScore, preferenceScore: it.preferenceScore, emotionScore: it.emotionScore })),
      modelVersion: scorer.modelVersion,
      createdTimeMs: Date.now(),
    };
  }

  async function handle(record: InputRecord): Promise<Recommendation | null> {
    const user = record.key;
    const source = `${record.topicName}:${record.partition}`;
    let applied: boolean;
    let trigger: Recommendation['trigger'] | null = null;
    if (record.topic === 'listens') {
      const listen = record.value as Listen;
      if (!scorer.catalogue.indexOf.has(listen.trackId)) throw new EmotionMuseError('UNKNOWN_TRACK', `track ${listen.trackId} is not in the catalogue of ${scorer.modelVersion}`);
      if (listen.listenedMs < 0) throw new EmotionMuseError('INVALID_RECORD', `listenedMs is negative (${listen.listenedMs})`);
      applied = await store.applyListen(user, source, record.offset, listen.trackId);
      if (applied) {
        const { listAtMs } = await store.read(user);
        if (listAtMs === null || listen.startTimeMs - listAtMs >= config.refreshIntervalMs) trigger = 'LISTEN';
      }
    } else {
      const change = record.value as EmotionChange;
      const outcome = await store.applyEmotion(user, source, record.offset, {
        label: change.label, probabilities: change.probabilities, valence: change.valence, arousal: change.arousal, sinceMs: change.captureTimeMs,
      }, `${change.sessionId}:${change.windowEndSeq}`);
      if (outcome === 'repeat') {
        // The smoother (at least once) sent this change again after a restart: its list is out already.
        metrics?.skipped.inc({ stage: 'recommender', reason: 'repeated-change' });
        await store.rememberOutput(source, record.offset, null, config.outputCacheSeconds);
        return null;
      }
      applied = outcome === 'applied';
      trigger = 'EMOTION_CHANGE';
    }
    if (!applied) {
      const cached = await store.rememberedOutput(source, record.offset);
      if (cached !== undefined) return cached === 'none' ? null : cached;
      if (record.topic === 'listens') return null;
    }
    if (!trigger) {
      await store.rememberOutput(source, record.offset, null, config.outputCacheSeconds);
      return null;
    }
    const list = await buildList(record, user, trigger);
    await store.saveList(user, list, trigger === 'LISTEN' ? (record.value as Listen).startTimeMs : null);
    await store.rememberOutput(source, record.offset, list, config.outputCacheSeconds);
    metrics?.recommendations.inc({ trigger });
    if (trigger === 'EMOTION_CHANGE') metrics?.endToEnd.observe({ path: 'list' }, Math.max(0, list.createdTimeMs - (record.value as EmotionChange).captureTimeMs) / 1000);
    return list;
  }

  return {
    name: 'recommender',
    async prepare(records) {
      const out: Array<Recommendation | null | Error> = [];
      for (const record of records) {
        const t0 = performance.now();
        try {
          out.push(await handle(record));
        } catch (err) {
          // A service that is away fails the whole batch (it is retried); a bad record fails alone.
          if (err instanceof EmotionMuseError && err.retriable) throw err;
          out.push(err instanceof Error ? err : new Error(String(err)));
        }
        step('record', performance.now() - t0);
      }
      return out;
    },
    process(_state, record, list) {
      return { state: undefined, outputs: list ? [{ to: 'recommendations', key: record.key, value: list }] : [] };
    },
    ready: () => (store.ready() ? { ready: true } : { ready: false, reason: 'redis is not reachable' }),
    close: () => store.close(),
    routes: [
      async (req, url) => {
        const m = /^\/users\/([^/]+)\/recommendations$/.exec(url.pathname);
        if (!m || req.method !== 'GET') return undefined;
        const user = decodeURIComponent(m[1]!);
        // A user's list is personal data: only a bearer token for that user reads it.
        const refused = await authorizeUser(deps.verifier, req, user);
        if (refused) return refused;
        const list = await store.lastList(user);
        if (!list) return { status: 404, body: { error: 'no recommendations for this user yet' } };
        return {
          status: 200,
          body: { ...list, items: list.items.map((it) => ({ ...it, title: scorer.catalogue.titles[scorer.catalogue.indexOf.get(it.trackId) ?? -1] ?? null, artist: scorer.catalogue.artists[scorer.catalogue.indexOf.get(it.trackId) ?? -1] ?? null })) },
        };
      },
    ],
  };
}
