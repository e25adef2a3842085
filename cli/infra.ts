import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from './command.ts';

const script = fileURLToPath(new URL('../infra/local.sh', import.meta.url));

export const infraCommand: Command = {
  summary: 'start, stop or report the local Kafka, Redis and Prometheus (no Docker needed)',
  help: `usage: emotionmuse infra up|down|status|install|secrets [kafka|redis|prometheus]...

up       starts a single-node KRaft Kafka broker (jars from Maven Central, cached in .cache/) and
         Redis on loopback, data in .data/; idempotent, and reuses a service already listening.
down     stops what \`up\` started.
status   says what listens on the configured ports.
install  fetches the Kafka jars and installs the Debian packages (redis-server, prometheus).
secrets  makes the secured mode's CA, certificates and passwords under .data/secrets (up does it).

With EM_SECURITY=on, up starts the secured broker (SASL_SSL, SCRAM-SHA-512, ACLs) and Redis (TLS,
ACL users), with data of their own, and down stops those; README.md "Security" says more.

environment: EM_KAFKA_VERSION (3.9.1), EM_KAFKA_PORT (9092), EM_KAFKA_CONTROLLER_PORT (9093),
EM_REDIS_PORT (6379), EM_PROMETHEUS_PORT (9090), EM_DATA_DIR (.data), EM_CACHE_DIR (.cache),
EM_SECURITY (off), EM_SECRETS_DIR (.data/secrets)`,
  async run(argv) {
    if (argv.length === 0) {
      console.log(this.help);
      return 2;
    }
    return spawnSync('bash', [script, ...argv], { stdio: 'inherit' }).status ?? 1;
  },
};
