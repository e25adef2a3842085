import { fileURLToPath } from 'node:url';
import { hasTokenKey, tokenConfigOf, tokenKeyOptions } from '../../auth/options.ts';
import { TokenVerifier } from '../../auth/tokens.ts';
import { opt } from '../../runtime/config.ts';
import { redisSecurity } from '../../runtime/security.ts';
import { entry, inferenceOptions, providersOf } from '../options.ts';
import { createRecommenderCore, DEFAULT_RECOMMENDER_CONFIG } from './core.ts';
import { SCORING_GRAPHS, SERVED_MODELS, Scorer } from './scorer.ts';
import { UserStore } from '../../state/user-store.ts';

export const recommenderOptions = {
  ...inferenceOptions,
  modelDir: opt.string('EM_RECOMMENDER_MODEL', 'model-dir', fileURLToPath(new URL('../../models/recommender-full', import.meta.url)), 'Folder of an exported recommender (scoring.onnx, tracks.tsv, card.json, and music_emb.f32 or, packed, weights.q8 + packed.json)'),
  scoringGraph: opt.oneOf('EM_SCORING_GRAPH', 'scoring-graph', 'auto', SCORING_GRAPHS, 'Scoring graph: exact = scoring.onnx (float32 over the catalogue); two-stage = scoring-int8.onnx (int8 candidates, exact float32 rescoring); auto = two-stage where the model folder has it'),
  served: opt.oneOf('EM_RECOMMENDER_SERVE', 'serve', 'auto', SERVED_MODELS, 'Base model that gives the candidates: auto = what training chose on validation (card.json "serving"; the sequence graph for older exports); sequence = scoring.onnx; neighbourhood = the item-kNN or session-kNN tables in neighbours/; hybrid = both, fused with the trained weight'),
  lambda: opt.number('EM_RERANK_LAMBDA', 'lambda', DEFAULT_RECOMMENDER_CONFIG.lambda, 'Reranking: final = lambda * preference + (1 - lambda) * emotion compatibility', { min: 0, max: 1 }),
  topK: opt.int('EM_TOP_K', 'top-k', DEFAULT_RECOMMENDER_CONFIG.topK, 'Tracks per published list', { min: 1, max: 100 }),
  refreshIntervalMs: opt.int('EM_LISTEN_REFRESH_MS', 'listen-refresh-ms', DEFAULT_RECOMMENDER_CONFIG.refreshIntervalMs, 'Listens refresh a user\'s list at most once per this many ms', { min: 0 }),
  historySize: opt.int('EM_HISTORY_SIZE', 'history-size', 50, 'Listened tracks kept per user (the model reads the last 50)', { min: 1 }),
  userTtlSeconds: opt.int('EM_USER_TTL_S', 'user-ttl-s', 30 * 24 * 3600, 'Inactive users expire from Redis after this many seconds', { min: 1 }),
  redisPrefix: opt.string('EM_REDIS_PREFIX', 'redis-prefix', 'em:', 'Prefix of every Redis key'),
};

/** emotion-changes + listens -> recommendations: the model, the user store in Redis (timed), the token-checked read-back route. */
export const recommender = entry({
  name: 'recommender',
  port: 9103,
  options: { ...recommenderOptions, ...tokenKeyOptions },
  create: async ({ metrics, logger, config, common }) => {
    // GET /users/{id}/recommendations answers only a bearer token for that user.
    const tokens = tokenConfigOf(config);
    const verifier = hasTokenKey(tokens) ? await TokenVerifier.create(tokens) : undefined;
    if (!verifier) logger.warn('no token key configured: GET /users/{id}/recommendations refuses every request (set EM_JWT_SECRET or a key file)');
    const scorer = await Scorer.open(config.modelDir, { providers: providersOf(config.providers), threads: config.threads, graph: config.scoringGraph, served: config.served, logger });
    logger.info('recommender model loaded', { model: scorer.modelVersion, tracks: scorer.catalogue.size, provider: scorer.provider, graph: scorer.graphFile, served: scorer.served });
    metrics.modelInfo.set({ stage: 'recommender', model: scorer.served, version: scorer.modelVersion, provider: scorer.provider }, 1);
    const store = new UserStore(common.redisUrl, {
      prefix: config.redisPrefix,
      historySize: config.historySize,
      ttlSeconds: config.userTtlSeconds,
      onOperation: (_op, ms) => metrics.stepSeconds.observe({ stage: 'recommender', step: 'redis' }, ms / 1000),
    }, redisSecurity(common));
    await store.connect();
    return createRecommenderCore({ scorer, store, metrics, verifier, config: { ...DEFAULT_RECOMMENDER_CONFIG, lambda: config.lambda, topK: config.topK, refreshIntervalMs: config.refreshIntervalMs } });
  },
});
