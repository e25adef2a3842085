import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The layers of the source tree, top to bottom: a file may import its own folder and the layers
 * below its own, never a layer above (nor a folder beside it on the same layer). The tooling
 * (benchmarks, scripts, training, model building) sits on top; the message schemas, with the
 * error type every layer throws, at the bottom. Tests may import anything.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['bench', 'scripts', 'training', 'models'],
  ['cli'],
  ['web'],
  ['gateway'],
  ['edge'],
  ['processors'],
  ['vision'],
  ['sessions', 'observability', 'state'],
  ['auth'],
  ['runtime'],
  ['topology'],
  ['schemas'],
];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (name === 'node_modules' || name.startsWith('.') || name === 'generated') continue;
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mts)$/.test(name)) out.push(p);
  }
  return out;
}

/** The imports in `files` (path from the root, source text) that go up a layer, sideways, or from one stage into another. */
function violationsIn(files: ReadonlyArray<{ rel: string; source: string }>): string[] {
  const rank = (folder: string) => LAYERS.findIndex((l) => l.includes(folder));
  const found: string[] = [];
  for (const { rel, source } of files) {
    const [from, sub] = rel.split('/');
    for (const m of source.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
      const targetRel = path.posix.normalize(path.posix.join(path.posix.dirname(rel), m[1]!));
      const [to, toSub] = targetRel.split('/');
      if (to === from) {
        // processors/<stage>/ files reach neither into another stage nor up to processors/index.ts
        // (which wires the stages); the shared files at processors/ reach into no stage.
        if (from === 'processors') {
          const stage = (x: string | undefined) => (x && !x.endsWith('.ts') ? x : undefined);
          const [fromStage, toStage] = [stage(sub), stage(toSub)];
          if (fromStage && toStage && toStage !== fromStage) found.push(`${rel} -> ${targetRel} (another stage)`);
          else if (fromStage && toSub === 'index.ts') found.push(`${rel} -> ${targetRel} (up: the wiring)`);
          else if (!fromStage && sub !== 'index.ts' && toStage) found.push(`${rel} -> ${targetRel} (a shared file into a stage)`);
        }
        continue;
      }
      if (rank(to!) === -1) found.push(`${rel} -> ${targetRel} (a folder of no layer)`);
      else if (rank(to!) <= rank(from!)) found.push(`${rel} -> ${targetRel} (${rank(to!) < rank(from!) ? 'up' : 'sideways'})`);
    }
  }
  return found;
}

function tree(): Array<{ rel: string; source: string }> {
  return LAYERS.flat().flatMap((layer) => {
    try {
      return sources(path.join(ROOT, layer)).map((f) => ({ rel: path.relative(ROOT, f).split(path.sep).join('/'), source: readFileSync(f, 'utf8') }));
    } catch {
      return [];
    }
  });
}

describe('import direction', () => {
  it('runs downward only: cli -> processors -> runtime -> schemas, no stage into another', () => {
    const files = tree();
    expect(files.length).toBeGreaterThan(100);
    expect(violationsIn(files)).toEqual([]);
  });

  it('catches an import up a layer, sideways, into another stage, or out of the layers', () => {
    expect(violationsIn([
      { rel: 'runtime/x.ts', source: "import { PROCESSORS } from '../processors/index.ts';" },
      { rel: 'sessions/x.ts', source: "import { quantile } from '../observability/histogram.ts';" },
      { rel: 'processors/recommender/x.ts', source: "import { smooth } from '../smoother/core.ts';" },
      { rel: 'processors/smoother/wiring.ts', source: "import { PROCESSORS } from '../index.ts';\nimport { entry } from '../options.ts';" },
      { rel: 'processors/options.ts', source: "import { smooth } from './smoother/core.ts';" },
      { rel: 'processors/index.ts', source: "import { smoother } from './smoother/wiring.ts';" },
      { rel: 'bench/x.ts', source: "import { FACES } from '../tests/support/x.ts';" },
      { rel: 'cli/x.ts', source: "import { a } from './y.ts';\nimport { b } from '../runtime/config.ts';\nimport { c } from '../processors/index.ts';" },
    ])).toEqual([
      'runtime/x.ts -> processors/index.ts (up)',
      'sessions/x.ts -> observability/histogram.ts (sideways)',
      'processors/recommender/x.ts -> processors/smoother/core.ts (another stage)',
      'processors/smoother/wiring.ts -> processors/index.ts (up: the wiring)',
      'processors/options.ts -> processors/smoother/core.ts (a shared file into a stage)',
      'bench/x.ts -> tests/support/x.ts (a folder of no layer)',
    ]);
  });
});
