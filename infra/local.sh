#!/usr/bin/env bash
# Local services without Docker: a single-node KRaft Kafka broker from the Apache Kafka jars
# (resolved by Maven from Maven Central on first use) and a Redis server (Debian redis-server),
# on loopback, with data under .data/. Idempotent: `up` twice is fine; a service already
# listening on its port is reused (say so with EM_REUSE_SERVICES=1, otherwise it must be ours).
#
#   infra/local.sh up [kafka|redis|prometheus]...   start (default: kafka redis)
#   infra/local.sh up kafka --brokers 3             three KRaft nodes (each broker and controller)
#                                                   on KAFKA_PORT..KAFKA_PORT+5, data under
#                                                   .data/kafka-cluster/, topics default to
#                                                   replication factor 3, min.insync.replicas 2
#   infra/local.sh down [...]                        stop what this script started (in the same
#                                                   mode: EM_SECURITY=on stops the secured ones)
#   infra/local.sh status                            what is running
#   infra/local.sh install                           fetch the Kafka jars, install Debian packages
#   infra/local.sh jars                              fetch the Kafka jars only; prints their folder
#   infra/local.sh secrets                           make the secured mode's CA, certificates and
#                                                   passwords (`up` does it when they are missing)
#
# Secured mode (EM_SECURITY=on): the broker listens with SASL_SSL (SCRAM-SHA-512 over TLS) and
# the KRaft authorizer (deny unless an ACL allows), one SCRAM principal per component; Redis
# listens with TLS only and ACL users (the default user is off). Data under .data/kafka-secure/
# and .data/redis-secure/; CA, certificates and one password file per principal under
# .data/secrets/ (mode 600, never printed).
#
# Environment: EM_KAFKA_VERSION (3.9.1), EM_KAFKA_PORT (9092), EM_KAFKA_CONTROLLER_PORT (9093),
# EM_REDIS_PORT (6379), EM_PROMETHEUS_PORT (9090), EM_DATA_DIR (.data), EM_CACHE_DIR (.cache),
# EM_SECURITY (off | on), EM_SECRETS_DIR (.data/secrets), EM_REDIS_KEY_PATTERNS ("em:* test.*":
# the keys the application's Redis user may touch; the test suite's prefixes begin with test.).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_VERSION="${EM_KAFKA_VERSION:-3.9.1}"
KAFKA_PORT="${EM_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${EM_KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${EM_REDIS_PORT:-6379}"
PROMETHEUS_PORT="${EM_PROMETHEUS_PORT:-9090}"
DATA="${EM_DATA_DIR:-$ROOT/.data}"
CACHE="${EM_CACHE_DIR:-$ROOT/.cache}"
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
SECURITY="${EM_SECURITY:-off}"
SECRETS="${EM_SECRETS_DIR:-$DATA/secrets}"
# The Kafka principals: one per component, and admin for the tooling (topics, ACLs, forget).
PRINCIPALS="admin classifier smoother recommender passthrough gateway edge"
case "$SECURITY" in on|off) ;; *) echo "EM_SECURITY takes on or off" >&2; exit 2 ;; esac
KAFKA_DIR="$DATA/kafka"; REDIS_DIR="$DATA/redis"
if [ "$SECURITY" = on ]; then KAFKA_DIR="$DATA/kafka-secure"; REDIS_DIR="$DATA/redis-secure"; fi

say() { printf '[infra] %s\n' "$*" >&2; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 name=$2 secs=${3:-60}
  for _ in $(seq 1 $((secs * 5))); do listening "$port" && return 0; sleep 0.2; done
  say "$name did not start listening on 127.0.0.1:$port within ${secs}s"; return 1
}
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# The process listening on loopback port $1 (empty when none, or ss cannot tell).
listener_pid() { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

install_debs() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
  # the browser test drives Debian's Chromium (puppeteer-core never downloads a browser)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then say "please install: ${missing[*]} (Debian packages)"; return 1; fi
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

install_kafka() {
  if [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then return 0; fi
  say "resolving Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/infra/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
}

# The secured mode's CA, server certificate (for 127.0.0.1 and localhost, used by the broker and
# Redis) and a random password per Kafka principal and Redis user. Made once; kept under
# $SECRETS with mode 600; values are never printed.
make_secrets() {
  [ -f "$SECRETS/ca.crt" ] && [ -f "$SECRETS/server.pem" ] && return 0
  say "making the secured mode's CA, certificates and passwords in $SECRETS"
  mkdir -p "$SECRETS"; chmod 700 "$SECRETS"
  ( umask 077; cd "$SECRETS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=EmotionMuse local CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -extfile server.ext \
      -out server.crt 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in server.key -out server.pk8
    cat server.pk8 server.crt > server.pem
    # a second CA that signs nothing of ours: tests check that a client trusting it is refused
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=Untrusted CA" -keyout other-ca.key -out other-ca.crt 2>/dev/null
    rm -f server.csr server.ext server.pk8 ca.srl
    for p in broker $PRINCIPALS; do openssl rand -hex 24 > "kafka-$p.password"; done
    for u in emotionmuse admin; do openssl rand -hex 24 > "redis-$u.password"; done
    openssl rand -hex 24 > metrics.password
    openssl rand -hex 32 > jwt.secret )
}

# A service of the other mode (plain or secured) on the port would be "reused" and refuse every
# client: say so and stop.
other_mode_check() {
  local name=$1 port=$2 other
  if [ "$SECURITY" = on ]; then other="$DATA/$name/$name.pid"; else other="$DATA/$name-secure/$name.pid"; fi
  # The other mode's service counts only if it is the one listening on this port (both modes may
  # run side by side, on ports of their own). Without ss, the pid alone decides.
  if pid_alive "$other" && { ! command -v ss >/dev/null || [ "$(listener_pid "$port")" = "$(cat "$other")" ]; }; then
    say "the $([ "$SECURITY" = on ] && echo plain || echo secured) $name of this checkout listens on 127.0.0.1:$port; stop it first ($([ "$SECURITY" = on ] || echo 'EM_SECURITY=on ')infra/local.sh down $name) or choose another port"
    exit 1
  fi
}

# In the secured mode a service found on the port is reused only when it speaks TLS with this
# checkout's CA: anything else (a plain service of another checkout, a secured one with another CA)
# would refuse every client, and the launcher would claim a secured service it does not have.
reuse_check() {
  local name=$1 port=$2
  other_mode_check "$name" "$port"
  [ "$SECURITY" = on ] || return 0
  if [ -f "$SECRETS/ca.crt" ] && timeout 5 openssl s_client -connect "127.0.0.1:$port" -CAfile "$SECRETS/ca.crt" -verify_return_error </dev/null >/dev/null 2>&1; then return 0; fi
  say "something listens on 127.0.0.1:$port but does not speak TLS with this checkout's CA ($SECRETS/ca.crt): it is not this checkout's secured $name, and the secured mode will not use it; stop it, or choose another port (EM_$(echo "$name" | tr a-z A-Z)_PORT)"
  exit 1
}

# Starts KRaft node $1 of $2 (broker and controller); node 1 of 1 is the single local broker.
# Nodes of a cluster listen on KAFKA_PORT + 2(i - 1) (clients) and the port after it (controller).
kafka_node_up() {
  local i=$1 n=$2 dir port cport voters="" rf=1 min_isr=1
  if [ "$n" = 1 ]; then
    dir="$KAFKA_DIR"; port=$KAFKA_PORT; cport=$CONTROLLER_PORT; voters="1@127.0.0.1:$CONTROLLER_PORT"
  else
    dir="$DATA/kafka-cluster/node-$i"; port=$((KAFKA_PORT + 2 * (i - 1))); cport=$((port + 1)); rf=3; min_isr=2
    for k in $(seq 1 "$n"); do voters="$voters${voters:+,}$k@127.0.0.1:$((KAFKA_PORT + 2 * (k - 1) + 1))"; done
  fi
  local pidf="$dir/kafka.pid"
  if pid_alive "$pidf" && listening "$port"; then say "kafka node $i already running (pid $(cat "$pidf")) on 127.0.0.1:$port"; return 0; fi
  if listening "$port"; then reuse_check kafka "$port"; say "something already listens on 127.0.0.1:$port$([ "$SECURITY" = on ] && echo ' and speaks TLS with this checkout'"'"'s CA'); reusing it as Kafka"; return 0; fi
  mkdir -p "$dir/logs"
  sed -e "s#@KAFKA_PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$cport#g" -e "s#@DATA_DIR@#$dir#g" -e "s#@NODE_ID@#$i#g" \
    -e "s#@VOTERS@#$voters#g" -e "s#@RF@#$rf#g" -e "s#@MIN_ISR@#$min_isr#g" \
    "$ROOT/infra/kafka/server.properties.template" > "$dir/server.properties"
  local scram=()
  if [ "$SECURITY" = on ]; then
    chmod 600 "$dir/server.properties"
    sed -e "s#@KAFKA_PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$cport#g" -e "s#@SECRETS@#$SECRETS#g" \
      -e "s#@BROKER_PASSWORD@#$(cat "$SECRETS/kafka-broker.password")#g" \
      "$ROOT/infra/kafka/secure.properties.template" >> "$dir/server.properties"
    # SCRAM credentials go into the bootstrap metadata when the storage is formatted
    for p in broker $PRINCIPALS; do scram+=(--add-scram "SCRAM-SHA-512=[name=$p,password=$(cat "$SECRETS/kafka-$p.password")]"); done
  fi
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$dir/logs/meta.properties" ]; then
    java -cp "$cp" -Dlog4j.configuration="file:$ROOT/infra/kafka/log4j.properties" -Dkafka.logs.dir="$dir" \
      kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$dir/server.properties" "${scram[@]}" >/dev/null
  fi
  say "starting kafka $KAFKA_VERSION node $i/$n on 127.0.0.1:$port (logs: $dir/server.log)"
  # The JVM options of Kafka's own start script (kafka-run-class.sh): G1 aiming at 20 ms pauses
  # instead of its default 200, which would show in every stage's p99.
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$ROOT/infra/kafka/log4j.properties" -Dkafka.logs.dir="$dir" \
    -cp "$cp" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
  echo $! >"$pidf"
}

kafka_node_wait() {
  local i=$1 n=$2 port=$KAFKA_PORT dir="$KAFKA_DIR"
  if [ "$n" != 1 ]; then port=$((KAFKA_PORT + 2 * (i - 1))); dir="$DATA/kafka-cluster/node-$i"; fi
  wait_port "$port" "kafka node $i" 90 || { tail -n 30 "$dir/stdout.log" "$dir/server.log" >&2 || true; return 1; }
}

kafka_up() {
  install_kafka
  local n=$KAFKA_BROKERS_COUNT cp="$KAFKA_LIBS/*" idf
  if [ "$SECURITY" = on ]; then
    [ "$n" = 1 ] || { say "the secured mode runs one broker (--brokers 3 is plain only)"; return 2; }
    make_secrets
  fi
  if [ "$n" = 1 ]; then idf="$KAFKA_DIR/cluster.id"; else idf="$DATA/kafka-cluster/cluster.id"; fi
  mkdir -p "$(dirname "$idf")"
  [ -f "$idf" ] || java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$idf"
  CLUSTER_ID=$(cat "$idf")
  for i in $(seq 1 "$n"); do kafka_node_up "$i" "$n"; done
  for i in $(seq 1 "$n"); do kafka_node_wait "$i" "$n"; done
  if [ "$n" = 1 ]; then say "kafka is up$([ "$SECURITY" = on ] && echo " (SASL_SSL, SCRAM-SHA-512, ACLs; secrets in $SECRETS)")"; else say "kafka is up: $n nodes on 127.0.0.1:$KAFKA_PORT-$((KAFKA_PORT + 2 * n - 1)) (replication factor 3, min.insync.replicas 2)"; fi
}

# The ACL file of the secured Redis: the default user behind the admin password; `emotionmuse` (the recommender and the
# gateway) on the project's keys with only the commands they send; `admin` (tooling: users
# forget, tests) with everything. Passwords are stored as SHA-256 digests.
redis_acl() {
  local app admin patterns=""
  app=$(tr -d '\n' <"$SECRETS/redis-emotionmuse.password" | sha256sum | cut -d' ' -f1)
  admin=$(tr -d '\n' <"$SECRETS/redis-admin.password" | sha256sum | cut -d' ' -f1)
  for k in ${EM_REDIS_KEY_PATTERNS:-em:* test.*}; do patterns="$patterns ~$k"; done
  # The default user needs the admin password (as requirepass would) rather than being off:
  # Redis 7.0 replays MULTI/EXEC from the append-only file as the default user, and refuses them
  # (NOPERM, the data lost at a restart) when that user may not run them.
  printf 'user default on #%s ~* &* +@all\n' "$admin"
  printf 'user emotionmuse on #%s%s resetchannels -@all +get +set +del +exists +expire +hget +hset +hgetall +lpush +ltrim +lrange +multi +exec +discard +eval +evalsha +script|load +ping +info +select +client|setname +hello +auth +echo\n' "$app" "$patterns"
  printf 'user admin on #%s ~* &* +@all\n' "$admin"
}

redis_up() {
  local dir="$REDIS_DIR" pidf="$REDIS_DIR/redis.pid"
  if listening "$REDIS_PORT"; then reuse_check redis "$REDIS_PORT"; say "redis already listening on 127.0.0.1:$REDIS_PORT$([ "$SECURITY" = on ] && echo ' with TLS of this checkout'"'"'s CA'); reusing it"; return 0; fi
  command -v redis-server >/dev/null || install_debs
  mkdir -p "$dir"
  local net=(--port "$REDIS_PORT")
  if [ "$SECURITY" = on ]; then
    make_secrets
    ( umask 077; redis_acl > "$dir/users.acl" )
    net=(--port 0 --tls-port "$REDIS_PORT" --tls-cert-file "$SECRETS/server.crt" --tls-key-file "$SECRETS/server.key"
      --tls-ca-cert-file "$SECRETS/ca.crt" --tls-auth-clients no --aclfile "$dir/users.acl")
  fi
  say "starting redis on 127.0.0.1:$REDIS_PORT (data: $dir$([ "$SECURITY" = on ] && echo "; TLS, ACL users"))"
  redis-server --bind 127.0.0.1 "${net[@]}" --dir "$dir" --daemonize yes --pidfile "$pidf" \
    --logfile "$dir/redis.log" --appendonly yes --save "" >/dev/null
  wait_port "$REDIS_PORT" redis 20
  say "redis is up"
}

prometheus_up() {
  local dir="$DATA/prometheus" pidf="$DATA/prometheus/prometheus.pid"
  if listening "$PROMETHEUS_PORT"; then say "prometheus already listening on 127.0.0.1:$PROMETHEUS_PORT; reusing it"; return 0; fi
  command -v prometheus >/dev/null || install_debs
  mkdir -p "$dir"
  say "starting prometheus on 127.0.0.1:$PROMETHEUS_PORT"
  local config="${EM_PROMETHEUS_CONFIG:-$ROOT/infra/prometheus/prometheus.local.yml}"
  if [ "$SECURITY" = on ] && [ -z "${EM_PROMETHEUS_CONFIG:-}" ]; then
    # the secured processors' /metrics ask for basic auth: the same scrape config with credentials
    make_secrets
    config="$dir/prometheus.secure.yml"
    sed -e "s#^  - rules/#  - $ROOT/infra/prometheus/rules/#" \
      -e "s#^  - job_name: emotionmuse\$#&\n    basic_auth: { username: metrics, password_file: $SECRETS/metrics.password }#" \
      "$ROOT/infra/prometheus/prometheus.local.yml" > "$config"
  fi
  nohup prometheus --config.file="$config" \
    --storage.tsdb.path="$dir/data" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$dir/prometheus.log" 2>&1 &
  echo $! >"$pidf"
  wait_port "$PROMETHEUS_PORT" prometheus 30
  say "prometheus is up"
}

stop_pidfile() {
  local name=$1 pidf=$2
  if pid_alive "$pidf"; then
    local pid; pid=$(cat "$pidf")
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  else
    say "$name: not started by this script"
  fi
  rm -f "$pidf"
}

status_line() {
  local name=$1 port=$2
  if listening "$port"; then echo "$name: listening on 127.0.0.1:$port"; else echo "$name: not running (port $port)"; fi
}

cmd=${1:-status}; shift || true
KAFKA_BROKERS_COUNT=${EM_KAFKA_NODES:-1}
services=()
while [ $# -gt 0 ]; do
  case "$1" in
    --brokers) KAFKA_BROKERS_COUNT=$2; shift 2 ;;
    --brokers=*) KAFKA_BROKERS_COUNT=${1#--brokers=}; shift ;;
    *) services+=("$1"); shift ;;
  esac
done
case "$KAFKA_BROKERS_COUNT" in 1|3) ;; *) echo "--brokers takes 1 or 3" >&2; exit 2 ;; esac
[ ${#services[@]} -gt 0 ] || services=(kafka redis)
case "$cmd" in
  # `up` also installs what the tests and the pipeline use beside the services (ffmpeg, promtool)
  # when it is missing; nothing happens when everything is there.
  up) install_debs; for s in "${services[@]}"; do "${s}_up"; done ;;
  down)
    for s in "${services[@]}"; do
      case "$s" in
        kafka)
          stop_pidfile kafka "$KAFKA_DIR/kafka.pid"
          for f in "$DATA"/kafka-cluster/node-*/kafka.pid; do if [ -f "$f" ]; then stop_pidfile "kafka $(basename "$(dirname "$f")")" "$f"; fi; done ;;
        redis) stop_pidfile redis "$REDIS_DIR/redis.pid" ;;
        prometheus) stop_pidfile prometheus "$DATA/prometheus/prometheus.pid" ;;
      esac
    done ;;
  status) status_line kafka "$KAFKA_PORT"; [ "$KAFKA_BROKERS_COUNT" = 3 ] && { status_line "kafka node 2" $((KAFKA_PORT + 2)); status_line "kafka node 3" $((KAFKA_PORT + 4)); }; status_line redis "$REDIS_PORT"; status_line prometheus "$PROMETHEUS_PORT" ;;
  install) install_debs; install_kafka ;;
  # the Kafka jars only (the Docker image build takes them from here); prints their folder
  jars) install_kafka; echo "$KAFKA_LIBS" ;;
  secrets) make_secrets; say "secrets in $SECRETS" ;;
  *) echo "usage: infra/local.sh up|down|status|install|jars|secrets [kafka|redis|prometheus]..." >&2; exit 2 ;;
esac
