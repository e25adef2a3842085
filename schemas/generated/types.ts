// Generated from schemas/avro by `npm run schemas:gen`. Do not edit.

export type FrameEncoding = 'JPEG' | 'PNG' | 'GRAY8' | 'NONE' | 'SCORES';

export interface FaceBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** One camera frame, or what an edge client kept of it at its privacy level. Short retention: raw faces are personal data. */
export interface Frame {
  userId: string;
  sessionId: string;
  /** Frame sequence number within the session, strictly increasing. */
  seq: number;
  /** Capture time on the edge device, Unix epoch milliseconds. */
  captureTimeMs: number;
  /** JPEG, PNG: a whole frame (privacy level frame). GRAY8: raw 8-bit grey pixels, row-major, width*height bytes: the face crop made on the device (level crop). NONE: the device found no face in this frame (no bytes; levels crop and scores). SCORES: the device ran the emotion CNN and sends only its probabilities (no bytes; level scores). */
  encoding: FrameEncoding;
  /** Pixel width; 0 when unknown for JPEG/PNG, and for NONE and SCORES. */
  width: number;
  /** Pixel height; 0 when unknown for JPEG/PNG, and for NONE and SCORES. */
  height: number;
  /** Empty for NONE and SCORES. */
  data: Buffer;
  /** Face box found on the edge, in pixels of the camera frame, if any. */
  faceBox: null | FaceBox;
  /** SCORES only: the 7 probabilities of the device's emotion CNN, in FER order. */
  probabilities: Array<number>;
  /** SCORES only: the version of the emotion model that ran on the device. */
  edgeModelVersion: string;
}

export type ScoredAt = 'SERVER' | 'EDGE';

export interface StageTimings {
  decodeMs: number;
  detectMs: number;
  preprocessMs: number;
  inferMs: number;
}

/** Per-frame emotion probabilities from the classifier. */
export interface EmotionScore {
  userId: string;
  sessionId: string;
  seq: number;
  captureTimeMs: number;
  faceFound: boolean;
  /** 7 probabilities in FER order: angry, disgust, fear, happy, sad, surprise, neutral. Empty when no face was found. */
  probabilities: Array<number>;
  faceBox: null | FaceBox;
  modelVersion: string;
  /** SERVER: the classifier ran the emotion CNN. EDGE: the device did (privacy level scores); the classifier validated the probabilities and passed them on, and modelVersion is the device's. */
  scoredAt: ScoredAt;
  timings: StageTimings;
  processedTimeMs: number;
}

export type Emotion = 'angry' | 'disgust' | 'fear' | 'happy' | 'sad' | 'surprise' | 'neutral';

/** A change of the smoothed emotion label (the smoother's output). v2 says which scheme made it and how sure it is. */
export interface EmotionChange {
  userId: string;
  sessionId: string;
  /** null for the first label of a session. */
  previousLabel: null | Emotion;
  label: Emotion;
  /** Smoothed 7-class probabilities, FER order: the window mean (paper) or the posterior (filter). */
  probabilities: Array<number>;
  valence: number;
  arousal: number;
  windowIndex: number;
  /** Sequence number of the window's last frame. */
  windowEndSeq: number;
  /** Capture time of the window's last frame. */
  captureTimeMs: number;
  emittedTimeMs: number;
  /** The smoothing scheme: paper (window mean and hysteresis; probabilities are the window mean) or filter (a forward filter; probabilities are its posterior). v1 records read as paper. */
  scheme: string;
  /** The posterior probability of the new label where the scheme has one (filter); null otherwise and in v1 records. */
  confidence: null | number;
}

export type ListenOutcome = 'COMPLETED' | 'SKIPPED';

/** A play of a track, reported by a player. */
export interface Listen {
  listenId: string;
  userId: string;
  trackId: string;
  startTimeMs: number;
  listenedMs: number;
  outcome: ListenOutcome;
}

export type Trigger = 'EMOTION_CHANGE' | 'LISTEN' | 'REQUEST';

export interface EmotionContext {
  label: Emotion;
  probabilities: Array<number>;
  valence: number;
  arousal: number;
}

export interface RecommendedItem {
  trackId: string;
  rank: number;
  finalScore: number;
  preferenceScore: number;
  emotionScore: number;
}

/** A ranked list of tracks for one user. */
export interface Recommendation {
  listId: string;
  userId: string;
  trigger: Trigger;
  /** Id of the record that caused this list (topic/partition/offset or request id). */
  causeId: string;
  emotion: null | EmotionContext;
  items: Array<RecommendedItem>;
  modelVersion: string;
  createdTimeMs: number;
}

/** A record that a stage could not process, with where it came from and why. */
export interface DeadLetter {
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  key: null | Buffer;
  /** The record's value as it was read, or its first valueMaxBytes bytes when it was too large to write whole (valueTruncated). */
  value: null | Buffer;
  stage: string;
  errorCode: string;
  errorMessage: string;
  failedTimeMs: number;
  /** Size of the original value in bytes; -1 when unknown (written by v1) or there was none. */
  valueBytes: number;
  /** True when value holds only the start of the original. */
  valueTruncated: boolean;
  /** SHA-256 of the original value, hex; empty when there was none or for v1. */
  valueSha256: string;
}

/** The value type of each message kind, at its newest schema version. */
export interface MessageTypes {
  'frame': Frame;
  'emotion-score': EmotionScore;
  'emotion-change': EmotionChange;
  'listen': Listen;
  'recommendation': Recommendation;
  'dead-letter': DeadLetter;
}

