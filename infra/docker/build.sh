#!/usr/bin/env bash
# Builds the EmotionMuse images from the project's own files and the package registries:
#   emotionmuse:local             the CLI, the stages and the gateway (../../Dockerfile)
#   emotionmuse/kafka:local       Kafka (KRaft) on Debian's Java 17 with the launcher's jars
#   emotionmuse/redis:local       Debian's redis-server
#   emotionmuse/prometheus:local  Debian's Prometheus with the project's configuration and rules
#
#   infra/docker/build.sh [--base local|official] [--registry-ca FILE] [IMAGE...]
#
# --base local (the default) builds every image on emotionmuse/debian:bookworm, a Debian bookworm
#   made here once with debootstrap (about a minute, as root) and kept: for machines where no image
#   registry answers. --base official builds on debian:bookworm-slim from Docker Hub.
# --registry-ca FILE: the CA bundle that trusts a TLS proxy between the build and the registries
#   (default: $EM_REGISTRY_CA, else the system bundle /etc/ssl/certs/ca-certificates.crt). It is
#   handed to the install steps as a BuildKit secret and is in no image.
# IMAGE: app, kafka, redis, prometheus (default: all).
# Environment: EM_DOCKER (the docker client; by default one that can build with BuildKit),
# NPM_REGISTRY (npm's configured registry), EM_KAFKA_VERSION (3.9.1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
say() { printf '[docker-build] %s\n' "$*" >&2; }

usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
base=local
ca="${EM_REGISTRY_CA:-/etc/ssl/certs/ca-certificates.crt}"
images=()
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="${2:?--base takes local or official}"; shift 2 ;;
    --registry-ca) ca="${2:?--registry-ca takes a file}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    app|kafka|redis|prometheus) images+=("$1"); shift ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(app kafka redis prometheus)

# The client: Docker 23+ builds with BuildKit only through the buildx plugin; Debian's docker.io
# client (20.10) does it itself with DOCKER_BUILDKIT=1.
if [ -n "${EM_DOCKER:-}" ]; then DOCKER=$EM_DOCKER
elif docker buildx version >/dev/null 2>&1; then DOCKER=docker
elif [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker
else DOCKER=docker; fi
export DOCKER_BUILDKIT=1
$DOCKER info >/dev/null 2>&1 || { say "no Docker engine answers ($DOCKER info failed): start one (infra/docker/engine.sh up, as root)"; exit 1; }

case "$base" in
  local)
    BASE=emotionmuse/debian:bookworm
    if ! $DOCKER image inspect "$BASE" >/dev/null 2>&1; then
      command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install debootstrap (or --base official where Docker Hub answers)"; exit 1; }
      [ "$(id -u)" = 0 ] || { say "debootstrap needs root to make $BASE"; exit 1; }
      t0=$(date +%s); rootfs=$(mktemp -d)
      trap 'rm -rf "$rootfs"' EXIT
      say "making $BASE with debootstrap (minbase, bookworm, from ${EM_DEBIAN_MIRROR:-http://deb.debian.org/debian})"
      debootstrap --variant=minbase bookworm "$rootfs" "${EM_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
      # what a container never needs: apt's downloaded lists and packages, man pages
      rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/man/*
      tar -C "$rootfs" -c . | $DOCKER import -c 'CMD ["bash"]' - "$BASE" >/dev/null
      rm -rf "$rootfs"; trap - EXIT
      say "$BASE made in $(( $(date +%s) - t0 )) s"
    else
      say "$BASE is there (kept from an earlier build; docker rmi it to make it again)"
    fi ;;
  official) BASE=debian:bookworm-slim ;;
  *) echo "--base takes local or official" >&2; exit 2 ;;
esac

# An empty secret where no proxy CA is given: the install steps then use the image's own bundle.
secret=$(mktemp); trap 'rm -f "$secret"' EXIT
if [ -s "$ca" ]; then cat "$ca" > "$secret"; else say "no registry CA file ($ca): the install steps trust the image's own CAs"; fi
registry="${NPM_REGISTRY:-$(cd "$ROOT" && npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)}"

build() {
  local name=$1 tag=$2 dockerfile=$3 context=$4 t0
  t0=$(date +%s)
  say "building $tag (base $BASE)"
  $DOCKER build --network host --progress plain --secret "id=registry-ca,src=$secret" \
    --build-arg "BASE=$BASE" --build-arg "NPM_REGISTRY=$registry" \
    -f "$dockerfile" -t "$tag" "$context" > "$LOGS/$name.log" 2>&1 \
    || { tail -n 40 "$LOGS/$name.log" >&2; say "building $tag failed (whole log: $LOGS/$name.log)"; exit 1; }
  say "$tag built in $(( $(date +%s) - t0 )) s, $($DOCKER image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')"
}

LOGS="$ROOT/.cache/docker/logs"; mkdir -p "$LOGS"
for image in "${images[@]}"; do
  case "$image" in
    app) build app emotionmuse:local "$ROOT/Dockerfile" "$ROOT" ;;
    kafka)
      libs=$(bash "$ROOT/infra/local.sh" jars | tail -n1)
      ctx="$ROOT/.cache/docker/kafka"; rm -rf "$ctx"; mkdir -p "$ctx"
      cp -r "$libs" "$ctx/libs"
      cp "$ROOT/infra/kafka/server.properties.template" "$ROOT/infra/docker/kafka-log4j.properties" "$ROOT/infra/docker/kafka-entrypoint.sh" "$ctx/"
      build kafka emotionmuse/kafka:local "$ROOT/infra/docker/kafka.Dockerfile" "$ctx" ;;
    redis) build redis emotionmuse/redis:local "$ROOT/infra/docker/redis.Dockerfile" "$ROOT/infra/docker/empty-context" ;;
    prometheus)
      ctx="$ROOT/.cache/docker/prometheus"; rm -rf "$ctx"; mkdir -p "$ctx"
      cp -r "$ROOT/infra/prometheus" "$ctx/prometheus"
      build prometheus emotionmuse/prometheus:local "$ROOT/infra/docker/prometheus.Dockerfile" "$ctx" ;;
  esac
done
say "done: ${images[*]}"
