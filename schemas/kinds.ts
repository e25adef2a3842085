/** The six message kinds of the design, each with a folder of versioned Avro schemas under schemas/avro/. */
export const MessageKinds = [
  'frame',
  'emotion-score',
  'emotion-change',
  'listen',
  'recommendation',
  'dead-letter',
] as const;

export type MessageKind = (typeof MessageKinds)[number];

/** FER-2013 class order, used by every probability vector in the pipeline. */
export const EMOTIONS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'] as const;
export type EmotionLabel = (typeof EMOTIONS)[number];
