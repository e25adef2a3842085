import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript module without types (shared with the inference worker)
import { providerMissing } from '../../runtime/onnx-sessions.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// A model opened with the default providers (CUDA, then CPU) in a process of its own, as a stage
// does: ONNX Runtime's own stderr is what an operator reads in a container's log.
describe('execution providers', () => {
  it('tries only the providers whose library is installed, so a CPU machine logs no load failure, and says once which one runs', () => {
    const script = `
      const { register } = await import('tsx/esm/api');
      register();
      const { openSession } = await import('./runtime/onnx.ts');
      const lines = [];
      const logger = { info: (m, f) => lines.push(['info', m, f]), debug: (m, f) => lines.push(['debug', m, f]), warn() {}, error() {} };
      for (const model of ['emotion48-int8.onnx', 'blazeface.onnx']) await openSession('models/' + model, { providers: ['cuda', 'cpu'], logger });
      console.log(JSON.stringify(lines));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const lines = JSON.parse(r.stdout.trim().split('\n').pop()!) as Array<[string, string, { provider: string; passedOver: string[] }]>;
    const cudaMissing = providerMissing('cuda') as string | undefined;
    if (cudaMissing) {
      expect(r.stderr).not.toMatch(/Failed to load library|providers_shared|\[E:onnxruntime/);
      expect(lines.map(([level, , f]) => [level, f.provider])).toEqual([['info', 'cpu'], ['debug', 'cpu']]);
      expect(lines[0]![2].passedOver).toEqual([`cuda: ${cudaMissing}`]);
      expect(lines[0]![1]).toContain('runs on the CPU execution provider');
    } else {
      // a machine with the CUDA provider installed: it is tried, and the first line says what runs
      expect(lines[0]![0]).toBe('info');
      expect(['cuda', 'cpu']).toContain(lines[0]![2].provider);
    }
  });
});
