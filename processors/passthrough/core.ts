import { EmotionMuseError } from '../../schemas/errors.ts';
import type { ProcessorCore } from '../../runtime/processor.ts';
import type { Frame } from '../../schemas/generated/types.ts';
import type { SkipReason } from '../../runtime/metrics.ts';

/** Per user: the session in progress, the newest sequence number seen in it, frames forwarded. */
export interface PassthroughState {
  readonly sessionId: string;
  readonly lastSeq: number;
  readonly forwarded: number;
}

/**
 * The simplest real stage: validates frames and forwards them unchanged to the passthrough topic.
 * A frame whose sequence number is not newer than the last one of its session is a late or
 * duplicate frame: it is dropped and counted, never forwarded twice. Empty frames and GRAY8
 * frames whose size does not match width x height go to the dead-letter topic.
 */
export function createPassthroughCore(options: { onSkip?: (reason: SkipReason) => void } = {}): ProcessorCore<PassthroughState> {
  return {
    name: 'passthrough',
    process(state, record) {
      const frame = record.value as Frame;
      if (frame.data.length === 0) throw new EmotionMuseError('UNDECODABLE_FRAME', 'frame has no bytes');
      if (frame.encoding === 'GRAY8' && frame.data.length !== frame.width * frame.height) {
        throw new EmotionMuseError('UNDECODABLE_FRAME', `GRAY8 frame of ${frame.width}x${frame.height} has ${frame.data.length} bytes`);
      }
      const sameSession = state?.sessionId === frame.sessionId;
      if (sameSession && frame.seq <= state.lastSeq) {
        options.onSkip?.('late-or-duplicate');
        return { state, outputs: [] };
      }
      return {
        state: { sessionId: frame.sessionId, lastSeq: frame.seq, forwarded: (sameSession ? state.forwarded : 0) + 1 },
        outputs: [{ to: 'passthrough', key: record.key, value: frame }],
      };
    },
  };
}
