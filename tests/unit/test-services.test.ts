import { describe, expect, it } from 'vitest';
import { chooseServices, type DockerProbe } from '../support/services.ts';

// The integration tier's choice of Kafka and Redis (tests/support/services.ts). The probe stands
// for the engine's two answers; the tier's real run under Testcontainers is in CI
// (scripts/test-docker.sh).
const probe = (answers: boolean, missing: string[] = []): DockerProbe & { asked: number } => {
  const p = {
    asked: 0,
    engineAnswers: () => {
      p.asked++;
      return answers;
    },
    missingImages: () => missing,
  };
  return p;
};
const ENDPOINTS = { EM_KAFKA_BROKERS: '127.0.0.1:1', EM_REDIS_URL: 'redis://127.0.0.1:2' };

describe('where the integration tier gets Kafka and Redis', () => {
  it('takes the environment\'s endpoints, else the local launcher, and never Testcontainers by itself even where an engine answers', async () => {
    const docker = probe(true);
    expect((await chooseServices(ENDPOINTS, docker)).source).toBe('environment');
    expect((await chooseServices({}, docker)).source).toBe('local');
    expect((await chooseServices({ EM_KAFKA_BROKERS: 'x:1' }, docker)).source).toBe('local');
    expect(docker.asked).toBe(0);
  });

  it('runs Testcontainers when asked, and says what is missing when it cannot', async () => {
    expect(await chooseServices({ EM_TEST_SERVICES: 'testcontainers', ...ENDPOINTS }, probe(true))).toEqual({ source: 'testcontainers', why: 'EM_TEST_SERVICES=testcontainers' });
    await expect(chooseServices({ EM_TEST_SERVICES: 'testcontainers' }, probe(false))).rejects.toThrow(/needs a Docker engine.*infra\/docker\/engine.sh up/);
    await expect(chooseServices({ EM_TEST_SERVICES: 'testcontainers' }, probe(true, ['emotionmuse/kafka:local']))).rejects.toThrow(/emotionmuse\/kafka:local is missing: build it with infra\/docker\/build.sh/);
  });

  it('honours the other explicit choices and refuses an unknown one', async () => {
    expect((await chooseServices({ EM_TEST_SERVICES: 'local', ...ENDPOINTS }, probe(true))).source).toBe('local');
    expect((await chooseServices({ EM_TEST_SERVICES: 'environment', ...ENDPOINTS }, probe(true))).source).toBe('environment');
    await expect(chooseServices({ EM_TEST_SERVICES: 'environment' }, probe(true))).rejects.toThrow(/needs both EM_KAFKA_BROKERS and EM_REDIS_URL/);
    await expect(chooseServices({ EM_TEST_SERVICES: 'docker' }, probe(true))).rejects.toThrow(/takes auto, environment, local, testcontainers/);
  });
});
