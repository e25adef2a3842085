import type { ModelSession } from '../runtime/onnx.ts';
import { ort } from '../runtime/onnx.ts';
import { decodeBatch, DETECTOR_OUTPUTS, type DetectorInput, type DetectorOptions, type FaceBox } from './anchors.ts';

export * from './anchors.ts';

/** Runs the converted BlazeFace model on batches of RGB inputs normalised to [-1, 1]. */
export class FaceDetector {
  constructor(
    private readonly session: ModelSession,
    private readonly options: DetectorOptions = {},
  ) {}

  /** `inputs`: `scales.length` images of `input` pixels, NHWC; `scales`: frame pixels per input pixel of each. */
  async detect(inputs: Float32Array, input: DetectorInput, scales: readonly number[]): Promise<FaceBox[][]> {
    const feeds = { [this.session.inputNames[0]!]: new ort.Tensor('float32', inputs, [scales.length, input.height, input.width, 3]) };
    const out = await this.session.run(feeds);
    const head = (name: string) => out[name]!.data as Float32Array;
    return decodeBatch({ s16: head(DETECTOR_OUTPUTS.s16), s32: head(DETECTOR_OUTPUTS.s32), r16: head(DETECTOR_OUTPUTS.r16), r32: head(DETECTOR_OUTPUTS.r32) }, input, scales, this.options);
  }
}
