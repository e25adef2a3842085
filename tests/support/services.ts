/**
 * Where the integration tier gets its Kafka and Redis, chosen by EM_TEST_SERVICES:
 *   auto (default)   the endpoints in EM_KAFKA_BROKERS and EM_REDIS_URL when both are set, else the
 *                    local launcher. Never Testcontainers by itself: a Docker engine that answers
 *                    says nothing about whether the images can be had (no registry answers here).
 *   environment      EM_KAFKA_BROKERS and EM_REDIS_URL (both required)
 *   local            infra/local.sh (the Kafka jars and Debian's redis-server on loopback)
 *   testcontainers   the local images (infra/docker/build.sh) through Testcontainers on a Docker
 *                    engine, on the host network; Ryuk stays off unless TESTCONTAINERS_RYUK_DISABLED
 *                    says otherwise (its image comes from Docker Hub)
 */
export type ServicesSource = 'environment' | 'local' | 'testcontainers';
export const SERVICES_CHOICES = ['auto', 'environment', 'local', 'testcontainers'] as const;

export interface DockerProbe {
  /** Whether a Docker engine answers. */
  engineAnswers(): boolean | Promise<boolean>;
  /** Which of the needed images the engine lacks. */
  missingImages(): string[] | Promise<string[]>;
}

/** The source, or an error that says what is missing and how to get it. */
export async function chooseServices(env: NodeJS.ProcessEnv, docker: DockerProbe): Promise<{ source: ServicesSource; why: string }> {
  const choice = env.EM_TEST_SERVICES || 'auto';
  const endpoints = Boolean(env.EM_KAFKA_BROKERS && env.EM_REDIS_URL);
  switch (choice) {
    case 'auto':
      return endpoints
        ? { source: 'environment', why: 'EM_KAFKA_BROKERS and EM_REDIS_URL are set' }
        : { source: 'local', why: 'the default (EM_TEST_SERVICES=testcontainers runs them in Docker)' };
    case 'environment':
      if (!endpoints) throw new Error('EM_TEST_SERVICES=environment needs both EM_KAFKA_BROKERS and EM_REDIS_URL');
      return { source: 'environment', why: 'EM_TEST_SERVICES=environment' };
    case 'local':
      return { source: 'local', why: 'EM_TEST_SERVICES=local' };
    case 'testcontainers': {
      if (!(await docker.engineAnswers())) throw new Error('EM_TEST_SERVICES=testcontainers needs a Docker engine, and none answers: start one (as root: infra/docker/engine.sh install && infra/docker/engine.sh up)');
      const missing = await docker.missingImages();
      if (missing.length > 0) throw new Error(`EM_TEST_SERVICES=testcontainers runs the local images, and ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} missing: build ${missing.length > 1 ? 'them' : 'it'} with infra/docker/build.sh kafka redis`);
      return { source: 'testcontainers', why: 'EM_TEST_SERVICES=testcontainers' };
    }
    default:
      throw new Error(`EM_TEST_SERVICES takes ${SERVICES_CHOICES.join(', ')}, not "${choice}"`);
  }
}
