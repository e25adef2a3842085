#!/usr/bin/env bash
# The Docker tier (npm run test:docker; part of npm test): the images, the compose stack and
# Testcontainers on a real Docker engine.
#   1. a Docker engine: one that answers, else (as root) Debian's dockerd started here for these
#      steps and stopped after (infra/docker/engine.sh);
#   2. the images (infra/docker/build.sh: the base made once, then cached layers);
#   3. tests/docker/ (vitest.docker.config.ts): the image and infra/docker-compose.yml;
#   4. the end-to-end integration file with its Kafka and Redis from Testcontainers
#      (EM_TEST_SERVICES=testcontainers), and a check that it left no container behind.
# Without an engine and without root it fails and says how to get one. EM_TEST_DOCKER=skip skips
# the tier, saying so in capitals (for a machine that cannot run Docker at all).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${EM_TEST_DOCKER:-}" = skip ]; then
  echo "== DOCKER TIER SKIPPED (EM_TEST_DOCKER=skip): the images, compose and Testcontainers were NOT tested" >&2
  exit 0
fi
step() { printf '== docker tier: %s\n' "$*"; }
t_all=$(date +%s)
started=0
if ! bash infra/docker/engine.sh status >/dev/null 2>&1; then
  step "starting a Docker engine for this tier"
  bash infra/docker/engine.sh up
  started=1
fi
cleanup() {
  local rc=$?
  if [ "$started" = 1 ]; then bash infra/docker/engine.sh down || true; fi
  exit $rc
}
trap cleanup EXIT

t=$(date +%s); step "building the images (infra/docker/build.sh)"
bash infra/docker/build.sh
step "images ready in $(( $(date +%s) - t )) s"

t=$(date +%s); step "the image and infra/docker-compose.yml (tests/docker/)"
npx vitest run --config vitest.docker.config.ts "$@"
step "compose tests done in $(( $(date +%s) - t )) s"

t=$(date +%s); step "tests/integration/end-to-end.test.ts with Kafka and Redis from Testcontainers"
EM_TEST_SERVICES=testcontainers EM_KAFKA_BROKERS= EM_REDIS_URL= \
  npx vitest run --config vitest.integration.config.ts tests/integration/end-to-end.test.ts
DOCKER=${EM_DOCKER:-docker}; [ -z "${EM_DOCKER:-}" ] && [ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker
left=$($DOCKER ps -aq --filter label=org.testcontainers=true)
if [ -n "$left" ]; then
  echo "Testcontainers left containers behind: $left" >&2
  exit 1
fi
step "Testcontainers run done in $(( $(date +%s) - t )) s, nothing left behind"
step "finished in $(( $(date +%s) - t_all )) s"
