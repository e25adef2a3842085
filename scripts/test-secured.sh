#!/usr/bin/env bash
# The secured suite (npm run test:secured): starts the secured Kafka and Redis of the local
# launcher (EM_SECURITY=on: SASL_SSL with SCRAM and ACLs, Redis with TLS and ACL users) on ports of
# their own, beside any plain ones, runs vitest.secured.config.ts against them, and stops them if
# it started them. Extra arguments go to vitest.
set -euo pipefail
cd "$(dirname "$0")/.."
export EM_SECURITY=on
export EM_KAFKA_PORT=${EM_SECURED_KAFKA_PORT:-9192}
export EM_KAFKA_CONTROLLER_PORT=${EM_SECURED_KAFKA_CONTROLLER_PORT:-9193}
export EM_REDIS_PORT=${EM_SECURED_REDIS_PORT:-6380}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
started=()
listening "$EM_KAFKA_PORT" || started+=(kafka)
listening "$EM_REDIS_PORT" || started+=(redis)
if [ ${#started[@]} -gt 0 ]; then trap 'bash infra/local.sh down "${started[@]}"' EXIT; fi
echo "== secured services: Kafka 127.0.0.1:$EM_KAFKA_PORT (SASL_SSL), Redis 127.0.0.1:$EM_REDIS_PORT (TLS)"
bash infra/local.sh up kafka redis
EM_KAFKA_BROKERS="127.0.0.1:$EM_KAFKA_PORT" EM_REDIS_URL="redis://127.0.0.1:$EM_REDIS_PORT" \
  npx vitest run --config vitest.secured.config.ts "$@"
