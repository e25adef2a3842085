import type { ProcessorEntry } from './options.ts';
import { classifier } from './classifier/wiring.ts';
import { passthrough } from './passthrough/wiring.ts';
import { recommender } from './recommender/wiring.ts';
import { smoother } from './smoother/wiring.ts';

export { emotionModelOption, inferenceOptions, providersOf, type ProcessorContext, type ProcessorEntry } from './options.ts';
export { classifierOptions } from './classifier/wiring.ts';
export { recommenderOptions } from './recommender/wiring.ts';
export { smootherOptions } from './smoother/wiring.ts';

/** Every processor `emotionmuse run <name>` can start, each wired in its own folder; the topology says what each reads and writes. */
export const PROCESSOR_LIST: ReadonlyArray<ProcessorEntry<any>> = [passthrough, classifier, smoother, recommender];

export const PROCESSORS: Readonly<Record<string, ProcessorEntry<any>>> = Object.fromEntries(PROCESSOR_LIST.map((p) => [p.name, p]));

/** The state version of each stateful processor's default options, for the topology's changelogs. */
export const STATE_VERSIONS: Readonly<Record<string, string>> = Object.fromEntries(PROCESSOR_LIST.flatMap((p) => (p.stateVersion ? [[p.name, p.stateVersion]] : [])));
