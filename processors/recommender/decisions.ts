import { EmotionMuseError } from '../../schemas/errors.ts';
import type { Emotion, Listen, Recommendation } from '../../schemas/generated/types.ts';
import type { InputRecord } from '../../runtime/processor.ts';
import type { EmotionState, RememberedOutput } from '../../state/user-store.ts';

/**
 * The recommender's decisions as pure functions: the core (core.ts) reads and writes Redis only
 * through UserStore and asks these what to do.
 */

/** A listen the recommender can apply: a catalogue track and a length that is not negative. */
export function checkListen(listen: Listen, inCatalogue: (trackId: string) => boolean, modelVersion: string): void {
  if (!inCatalogue(listen.trackId)) throw new EmotionMuseError('UNKNOWN_TRACK', `track ${listen.trackId} is not in the catalogue of ${modelVersion}`);
  if (listen.listenedMs < 0) throw new EmotionMuseError('INVALID_RECORD', `listenedMs is negative (${listen.listenedMs})`);
}

/**
 * What a record already applied to the user's state (a redelivery, or a retry after a failure)
 * gives: the output it gave the first time when that is remembered; the list when one was due and
 * not yet made (`pending`: the update was applied, then something failed before its list was
 * saved); else nothing for a listen, and for an emotion change its list built again (the change
 * is the user's current emotion either way).
 */
export function redelivered(topic: InputRecord['topic'], remembered: RememberedOutput): { output: Recommendation | null } | 'build' {
  if (remembered === 'pending') return 'build';
  if (remembered !== undefined) return { output: remembered === 'none' ? null : remembered };
  return topic === 'listens' ? { output: null } : 'build';
}

/** The source of a record's coordinates: the key of its offset fence and remembered output. */
export const sourceOf = (record: InputRecord): string => `${record.topicName}:${record.partition}`;

export interface ListItem {
  readonly index: number;
  readonly finalScore: number;
  readonly preferenceScore: number;
  readonly emotionScore: number;
}

/** The published list: ranked items for the user, named after the record that caused it (the same record gives the same list id). */
export function composeList(record: InputRecord, trigger: Recommendation['trigger'], emotion: EmotionState | null, items: readonly ListItem[], trackIds: readonly string[], modelVersion: string, now: number): Recommendation {
  return {
    listId: `${record.key}:${sourceOf(record)}:${record.offset}`,
    userId: record.key,
    trigger,
    causeId: `${record.topicName}/${record.partition}/${record.offset}`,
    emotion: emotion ? { label: emotion.label as Emotion, probabilities: emotion.probabilities, valence: emotion.valence, arousal: emotion.arousal } : null,
    items: items.map((it, rank) => ({ trackId: trackIds[it.index]!, rank: rank + 1, finalScore: it.finalScore, preferenceScore: it.preferenceScore, emotionScore: it.emotionScore })),
    modelVersion,
    createdTimeMs: now,
  };
}
