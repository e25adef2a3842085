import { EMOTIONS } from '../schemas/kinds.ts';

export interface ModelSpec {
  readonly name: string;
  readonly version: string;
  /** Path of the TF.js graph model inside @vladmandic/human. */
  readonly source: string;
  readonly description: string;
  readonly inputs: ReadonlyArray<{ name: string; shape: ReadonlyArray<number | string>; range: string }>;
  readonly outputs: ReadonlyArray<{ name: string; shape: ReadonlyArray<number | string>; meaning: string }>;
  readonly labels?: readonly string[];
  readonly preprocessing: readonly string[];
  readonly license: string;
  readonly origin: string;
  /** Convert with a dynamic input height and width (fully convolutional graphs). @defaultValue false */
  readonly dynamicSpatial?: boolean;
  /** Convert for ONNX Runtime's blocked CPU kernels (`ConvertOptions.nchwc` in models/convert/tfjs-to-onnx.ts). */
  readonly nchwc?: { readonly block: number; readonly spatialMultiple: number };
}

const BLAZEFACE = {
  name: 'blazeface',
  version: 'blazeface-front-human-3.3.6',
  source: 'models/blazeface.json',
  description: 'BlazeFace short-range face detector, trained at 256x256 (896 anchors: 16x16x2 at stride 16, 8x8x6 at stride 32); fully convolutional, converted with a dynamic input size (a side S, a multiple of 32, gives (S/16)^2 x 2 + (S/32)^2 x 6 anchors).',
  inputs: [{ name: 'input', shape: ['batch', 'height', 'width', 3], range: 'RGB, p / 127.5 - 1, in [-1, 1]; the frame is letterboxed (top left) into a square of the chosen side' }],
  outputs: [
    { name: 'Identity', shape: ['batch', '(S/16)^2 x 2', 1], meaning: 'face logits of the stride-16 anchors (sigmoid gives the score)' },
    { name: 'Identity_1', shape: ['batch', '(S/32)^2 x 6', 1], meaning: 'face logits of the stride-32 anchors' },
    { name: 'Identity_2', shape: ['batch', '(S/16)^2 x 2', 16], meaning: 'box (dx, dy, w, h in input pixels, relative to the anchor centre) and 6 keypoints, stride-16 anchors' },
    { name: 'Identity_3', shape: ['batch', '(S/32)^2 x 6', 16], meaning: 'the same for the stride-32 anchors' },
  ],
  preprocessing: ['decode to RGB (JPEG at reduced scale)', 'letterbox into SxS', 'normalise: x = p / 127.5 - 1'],
  dynamicSpatial: true,
  license: 'Apache-2.0 (Google MediaPipe BlazeFace weights), packaged under MIT by @vladmandic/human',
  origin: 'Google MediaPipe BlazeFace (front camera), converted to TF.js by @vladmandic/human',
} as const satisfies ModelSpec;

/** What each converted model is; models/build.ts writes these facts into the model cards. */
export const MODEL_SPECS = {
  emotion: {
    name: 'emotion',
    version: 'fer-mini-xception-human-3.3.6',
    source: 'models/emotion.json',
    description: 'Facial expression classifier: mini-Xception trained on FER-2013 (7 classes).',
    inputs: [{ name: 'input_1', shape: ['batch', 64, 64, 1], range: 'grey, (p / 255 - 0.5) * 2, in [-1, 1]' }],
    outputs: [{ name: 'Identity', shape: ['batch', 7], meaning: 'softmax probabilities in FER order' }],
    labels: EMOTIONS,
    preprocessing: [
      'full frames: detect faces with blazeface, take the largest face, widen its box by 10% on each side, crop',
      'convert to 8-bit grey (edge clients may send the grey face crop directly)',
      'resize to 64x64 (bilinear)',
      'CLAHE: clip limit 2.0, 8x8 tiles',
      'normalise: x = (p / 255 - 0.5) * 2',
    ],
    license: 'MIT (model weights as packaged by @vladmandic/human; original model by oarriaga/face_classification, MIT)',
    origin: 'oarriaga/face_classification mini-Xception, converted to TF.js by @vladmandic/human',
  },
  blazeface: BLAZEFACE,
  'blazeface-nchwc': {
    ...BLAZEFACE,
    name: 'blazeface-nchwc',
    description: `${BLAZEFACE.description} Laid out for ONNX Runtime's blocked (NCHWc) CPU kernels: the 24-channel tensors of the first blocks carry 8 zero channels, the channel pads are 1x1 identity convolutions and the 2x2 pools have explicit zero pads, so no layer falls back to plain NCHW (the same function; exact for inputs whose height and width are multiples of 32, which the detector always feeds). The classifier and the CLI's edge client run this one; browsers run blazeface.onnx.`,
    nchwc: { block: 16, spatialMultiple: 32 },
  },
} as const satisfies Record<string, ModelSpec>;

/** The detector file that Node runs (ONNX Runtime for Node); the browser's is `blazeface.onnx`. */
export const NODE_DETECTOR_FILE = 'blazeface-nchwc.onnx';
