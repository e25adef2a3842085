import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync } from 'node:fs';

/** The images infra/docker/build.sh makes, which the Docker tests run. */
export const LOCAL_IMAGES = ['emotionmuse:local', 'emotionmuse/kafka:local', 'emotionmuse/redis:local', 'emotionmuse/prometheus:local'] as const;

/**
 * The docker client to drive the engine with: EM_DOCKER, else Debian's docker.io client, which
 * matches the 20.10 engine these tests start (a newer client works too, through API negotiation).
 */
export function dockerBin(env: NodeJS.ProcessEnv = process.env): string {
  if (env.EM_DOCKER) return env.EM_DOCKER;
  return existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
}

/** Runs the docker client; throws with its output when it fails (unless `allowFail`). */
export function docker(args: readonly string[], o: { allowFail?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(dockerBin(), args, { encoding: 'utf8', timeout: o.timeoutMs ?? 120_000, env: o.env ?? process.env });
  if (!o.allowFail && r.status !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout || r.error?.message}`);
  return r;
}

/** Whether a Docker engine answers (within 10 s). */
export function engineAnswers(): boolean {
  const r = spawnSync(dockerBin(), ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0;
}

/** Which of `images` the engine does not have. */
export function missingImages(images: readonly string[] = LOCAL_IMAGES): string[] {
  return images.filter((image) => spawnSync(dockerBin(), ['image', 'inspect', image], { timeout: 10_000 }).status !== 0);
}

/**
 * Throws, with how to get what is missing, unless an engine answers and has `images`: a Docker
 * test that cannot run fails loudly rather than passing.
 */
export function requireDocker(images: readonly string[] = LOCAL_IMAGES): void {
  if (!engineAnswers()) throw new Error('the Docker tests need a Docker engine, and none answers: start one (as root: infra/docker/engine.sh install && infra/docker/engine.sh up), or run `npm run test:docker`, which starts it');
  const missing = missingImages(images);
  if (missing.length > 0) throw new Error(`the Docker tests run the local images, and ${missing.join(', ')} are missing: build them with infra/docker/build.sh`);
}
