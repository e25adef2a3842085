import type { InferenceSession } from 'onnxruntime-node';

export function sessionOptions(provider: string, threads?: number): InferenceSession.SessionOptions;
export function openFirst<P extends string>(modelPath: string, providers: readonly P[], threads?: number): Promise<{ session: InferenceSession; provider: P; passedOver: string[] }>;
