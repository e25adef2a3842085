import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ort } from '../../runtime/onnx.ts';

/** A models/train-fer run's parity reference: 16 faces and PyTorch's probabilities for them. */
export interface ParityReference {
  faces: number[][][];
  probabilities: number[][];
}

export const parityOf = (run: string): ParityReference => JSON.parse(readFileSync(path.join(run, 'parity.json'), 'utf8')) as ParityReference;

/**
 * Runs a models/train-fer run's exported graph (model.onnx) in onnxruntime-node on the faces of its
 * parity reference; returns its probabilities and the largest difference from PyTorch's.
 */
export async function exportedParity(run: string): Promise<{ got: Float32Array; worst: number }> {
  const { faces, probabilities } = parityOf(run);
  const session = await ort.InferenceSession.create(path.join(run, 'model.onnx'));
  const input = new Float32Array(faces.length * 48 * 48);
  faces.flat(2).forEach((p, i) => (input[i] = (p / 255 - 0.5) * 2));
  const out = await session.run({ input: new ort.Tensor('float32', input, [faces.length, 48, 48, 1]) });
  const got = out.probabilities!.data as Float32Array;
  let worst = 0;
  probabilities.flat().forEach((p, i) => (worst = Math.max(worst, Math.abs(p - got[i]!))));
  return { got, worst };
}
