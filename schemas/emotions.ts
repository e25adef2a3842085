import { EMOTIONS, type EmotionLabel } from './kinds.ts';

/** The paper's Table II: valence and arousal initialisation coordinates of the seven FER classes. */
export const TABLE_II: Readonly<Record<EmotionLabel, { valence: number; arousal: number }>> = {
  angry: { valence: 0.18, arousal: 0.76 },
  disgust: { valence: 0.15, arousal: 0.54 },
  fear: { valence: 0.22, arousal: 0.82 },
  happy: { valence: 0.88, arousal: 0.64 },
  sad: { valence: 0.2, arousal: 0.28 },
  surprise: { valence: 0.55, arousal: 0.78 },
  neutral: { valence: 0.5, arousal: 0.4 },
};

/** Valence and arousal of a probability vector: Table II's coordinates weighted by the probabilities. */
export function valenceArousal(probabilities: readonly number[]): { valence: number; arousal: number } {
  let valence = 0;
  let arousal = 0;
  EMOTIONS.forEach((e, i) => {
    valence += (probabilities[i] ?? 0) * TABLE_II[e].valence;
    arousal += (probabilities[i] ?? 0) * TABLE_II[e].arousal;
  });
  return { valence, arousal };
}
