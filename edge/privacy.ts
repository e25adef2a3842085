// The privacy levels and what each lets leave the device: pure data, shared with the web client.

/**
 * What leaves the device, per privacy level:
 * - `crop` (default): the face is found and cut out on the device; only the 48x48 grey crop (2,304
 *   bytes) and its face box are sent, or a no-face marker (no bytes) when there is no face.
 * - `scores`: the device also runs the emotion CNN; only its 7 probabilities, the model version
 *   and the face box are sent, or a no-face marker. No pixels leave the device.
 * - `frame`: the whole camera frame as JPEG, for cameras that cannot compute.
 * Every level also sends the user id, session id, sequence number and capture time.
 */
export type PrivacyLevel = 'crop' | 'scores' | 'frame';
export const PRIVACY_LEVELS = ['crop', 'scores', 'frame'] as const satisfies readonly PrivacyLevel[];

export const PRIVACY_TEXT: Record<PrivacyLevel, string> = {
  crop: 'the 48x48 grey crop of the largest face and its box (or a no-face marker); the rest of the frame stays on the device',
  scores: 'the 7 emotion probabilities of the on-device CNN, its version and the face box (or a no-face marker); no pixels',
  frame: 'the whole camera frame as JPEG',
};
