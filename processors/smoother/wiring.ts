import { opt } from '../../runtime/config.ts';
import { LABELS } from '../../runtime/metrics.ts';
import { entry } from '../options.ts';
import { createSmootherCore, DEFAULT_SMOOTHER_CONFIG, SMOOTHER_SCHEMES, smootherStateVersion } from './core.ts';

export const smootherOptions = {
  scheme: opt.oneOf('EM_SMOOTHER_SCHEME', 'scheme', DEFAULT_SMOOTHER_CONFIG.scheme, SMOOTHER_SCHEMES, 'Smoothing scheme: paper (mean of T frames, H windows agree) or filter (a forward filter over the seven classes, time-based; processors/smoother/README.md compares them)'),
  windowSize: opt.int('EM_SMOOTHER_WINDOW', 'window', DEFAULT_SMOOTHER_CONFIG.windowSize, 'Frames per non-overlapping window (the paper\'s T)', { min: 1 }),
  windowMs: opt.int('EM_SMOOTHER_WINDOW_MS', 'window-ms', DEFAULT_SMOOTHER_CONFIG.windowMs, 'paper: windows of this many ms of capture time instead of T frames (0: T frames)', { min: 0 }),
  hysteresis: opt.int('EM_SMOOTHER_HYSTERESIS', 'hysteresis', DEFAULT_SMOOTHER_CONFIG.hysteresis, 'Consecutive windows that must agree on a new label (the paper\'s H)', { min: 1 }),
  sessionGapMs: opt.int('EM_SMOOTHER_GAP_MS', 'session-gap-ms', DEFAULT_SMOOTHER_CONFIG.sessionGapMs, 'A longer gap between frames starts the user\'s state over', { min: 1 }),
  noFace: opt.oneOf('EM_SMOOTHER_NO_FACE', 'no-face', DEFAULT_SMOOTHER_CONFIG.noFace, ['skip', 'break-window'], 'Frames without a face: skip them, or discard the partial window'),
  switchRate: opt.number('EM_SMOOTHER_SWITCH_RATE', 'switch-rate', DEFAULT_SMOOTHER_CONFIG.switchRate, 'filter: label changes per second in the filter\'s prior (lower: steadier, slower)', { min: 0.0001, max: 10 }),
  threshold: opt.number('EM_SMOOTHER_THRESHOLD', 'threshold', DEFAULT_SMOOTHER_CONFIG.threshold, 'filter: posterior a new label needs before it is emitted', { min: 0.15, max: 0.9999 }),
  accuracy: opt.number('EM_SMOOTHER_ACCURACY', 'accuracy', DEFAULT_SMOOTHER_CONFIG.accuracy, 'filter: how often the classifier\'s top class is right (its PublicTest accuracy, models/*.card.json)', { min: 0.15, max: 0.99 }),
};

/** emotion-scores -> emotion-changes: the smoother's hooks count drops and resets, time each step and the capture -> change latency. */
export const smoother = entry({
  name: 'smoother',
  port: 9102,
  options: smootherOptions,
  stateVersion: smootherStateVersion(DEFAULT_SMOOTHER_CONFIG),
  create: ({ metrics, config }) => {
    // Every reason's series exists from the start (at 0), so that a dashboard shows none as none.
    for (const reason of LABELS.resetReason) metrics.stateResets.inc({ stage: 'smoother', reason }, 0);
    return createSmootherCore(config, {
      onDrop: (reason) => metrics.skipped.inc({ stage: 'smoother', reason }),
      onReset: (why) => metrics.stateResets.inc({ stage: 'smoother', reason: why }),
      onStep: (ms) => metrics.stepSeconds.observe({ stage: 'smoother', step: 'smooth' }, ms / 1000),
      onChange: (change) => metrics.endToEnd.observe({ path: 'change' }, Math.max(0, change.emittedTimeMs - change.captureTimeMs) / 1000),
    });
  },
});
