import { EmotionMuseError } from '../../schemas/errors.ts';
import { authorizeUser } from '../../auth/http.ts';
import type { TokenVerifier } from '../../auth/tokens.ts';
import type { RouteHandler } from '../../runtime/http.ts';
import type { Metrics, StepName } from '../../runtime/metrics.ts';
import type { InputRecord, ProcessorCore } from '../../runtime/processor.ts';
import type { EmotionChange, Listen, Recommendation } from '../../schemas/generated/types.ts';
import { checkListen, composeList, redelivered, sourceOf } from './decisions.ts';
import type { Scorer } from './scorer.ts';
import type { UserStore } from '../../state/user-store.ts';

export interface RecommenderConfig {
  /** Weight of preference against emotion compatibility in the final score. @defaultValue 0.7 */
  readonly lambda: number;
  /** Tracks per published list. @defaultValue 10 */
  readonly topK: number;
  /** Listens refresh a user's list at most once per this many ms (of listen time). @defaultValue 30000 */
  readonly refreshIntervalMs: number;
}

export const DEFAULT_RECOMMENDER_CONFIG: RecommenderConfig = { lambda: 0.7, topK: 10, refreshIntervalMs: 30_000 };

const UNIFORM = Array.from({ length: 7 }, () => 1 / 7);

/**
 * emotion-changes + listens -> recommendations, with per-user state in Redis. Every Redis update
 * is fenced by the record's source offset (a redelivered record is not applied twice) and the
 * list a record produced is kept for an hour, so that a redelivery publishes the same list.
 */
export function createRecommenderCore(deps: { scorer: Scorer; store: UserStore; config?: RecommenderConfig; metrics?: Metrics; verifier?: TokenVerifier }): ProcessorCore<never, Recommendation | null> & { routes: RouteHandler[] } {
  const { scorer, store, metrics } = deps;
  const config = deps.config ?? DEFAULT_RECOMMENDER_CONFIG;
  const step = (name: StepName, ms: number) => metrics?.stepSeconds.observe({ stage: 'recommender', step: name }, ms / 1000);

  async function buildList(record: InputRecord, trigger: Recommendation['trigger']): Promise<Recommendation> {
    const state = await store.read(record.key);
    const probabilities = state.emotion?.probabilities ?? UNIFORM;
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
    return composeList(record, trigger, state.emotion, items, scorer.catalogue.ids, scorer.modelVersion, Date.now());
  }

  /**
   * Applies the record to the user's state (fenced by its offset) and says what it triggers. The
   * same Redis script that applies it remembers whether a list is due (`pending`) or not (`none`),
   * so a failure before the list is saved leaves `pending`, and the retry makes the list.
   */
  async function apply(record: InputRecord): Promise<{ applied: boolean; trigger: Recommendation['trigger'] | null } | 'repeat'> {
    const user = record.key;
    const source = sourceOf(record);
    if (record.topic === 'listens') {
      const listen = record.value as Listen;
      checkListen(listen, (id) => scorer.catalogue.indexOf.has(id), scorer.modelVersion);
      const outcome = await store.applyListen(user, source, record.offset, listen.trackId, listen.startTimeMs, config.refreshIntervalMs);
      if (outcome === 'already') return { applied: false, trigger: 'LISTEN' };
      return { applied: true, trigger: outcome === 'refresh' ? 'LISTEN' : null };
    }
    const change = record.value as EmotionChange;
    const emotion = { label: change.label, probabilities: change.probabilities, valence: change.valence, arousal: change.arousal, sinceMs: change.captureTimeMs };
    const outcome = await store.applyEmotion(user, source, record.offset, emotion, `${change.sessionId}:${change.windowEndSeq}`);
    return outcome === 'repeat' ? 'repeat' : { applied: outcome === 'applied', trigger: 'EMOTION_CHANGE' };
  }

  async function handle(record: InputRecord): Promise<Recommendation | null> {
    const source = sourceOf(record);
    const applied = await apply(record);
    if (applied === 'repeat') {
      // The smoother (at least once) sent this change again after a restart: its list is out already.
      metrics?.skipped.inc({ stage: 'recommender', reason: 'repeated-change' });
      return null;
    }
    if (!applied.applied) {
      const again = redelivered(record.topic, await store.rememberedOutput(record.key, source, record.offset));
      if (again !== 'build') return again.output;
    }
    if (!applied.trigger) return null;
    const list = await buildList(record, applied.trigger);
    await store.saveList(record.key, source, record.offset, list);
    metrics?.recommendations.inc({ trigger: applied.trigger });
    if (applied.trigger === 'EMOTION_CHANGE') metrics?.endToEnd.observe({ path: 'list' }, Math.max(0, list.createdTimeMs - (record.value as EmotionChange).captureTimeMs) / 1000);
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
