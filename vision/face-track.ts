import { checkDetectorSide } from './anchors.ts';
import type { Box } from './crop-rules.ts';

/** The detector's settings: the side of its input, or a cascade of sides; recall of each in vision/README.md. */
export const DEFAULT_DETECTOR_SIDES: readonly number[] = [256];
/** Faces at least this many input pixels wide are trusted at a cascade's first side (vision/README.md). */
export const DEFAULT_CASCADE_MIN_WIDTH = 24;

/** Parses a detector setting: one side (`256`) or a cascade (`128/256`). */
export function parseDetectorSides(setting: string): number[] {
  const sides = setting.split('/').map((s) => Number(s.trim()));
  sides.forEach(checkDetectorSide);
  return sides;
}
export const formatDetectorSides = (sides: readonly number[]): string => sides.join('/');

/**
 * What the last frames of one camera stream found, so that the next frame looks for the face
 * near where it was: BlazeFace at `ROI_SIDE` on a square twice the face's size around its last
 * box, instead of the whole frame at the detector's side. The whole frame is searched again when
 * the window finds no face, and every `refreshFrames` frames (a larger face may have come in).
 * One per stream (an edge client's camera); frames of a stream must be cropped in order.
 */
export class FaceTrack {
  /** The face box of the last frame, in frame pixels. */
  box: Box | null = null;
  /** Frames since the whole frame was last searched. */
  sinceFull = 0;
  /** How many frames were found in a window and how many searched whole. */
  readonly counts = { window: 0, whole: 0 };
  constructor(readonly refreshFrames = 30) {}
}

/** Side of the window search's input, and the window's size relative to the last face. */
export const ROI_SIDE = 128;
export const ROI_SCALE = 2;
/** A face found in the window is the followed one when it overlaps its last box by this IoU. */
export const TRACK_IOU = 0.3;

