#!/usr/bin/env bash
# A Docker engine for the Docker tests and builds on a machine that has none running (CI):
# Debian's docker.io, host network only (no bridge, no iptables rules), started as root.
#
#   infra/docker/engine.sh install   apt-get install docker.io docker-compose debootstrap
#   infra/docker/engine.sh up        start dockerd unless an engine already answers
#   infra/docker/engine.sh down      stop the dockerd this script started (nothing else)
#   infra/docker/engine.sh status
#
# Environment: EM_DATA_DIR (.data): the pid file and the engine's log go to $EM_DATA_DIR/docker/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${EM_DATA_DIR:-$ROOT/.data}/docker"
PIDF="$DIR/dockerd.pid"
say() { printf '[docker-engine] %s\n' "$*" >&2; }
# Debian's client speaks to a 20.10 engine without version warnings and builds with BuildKit.
client() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }
answers() { client info >/dev/null 2>&1; }

case "${1:-}" in
  install)
    missing=()
    [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [ ${#missing[@]} -gt 0 ]; then
      [ "$(id -u)" = 0 ] || { say "please install: ${missing[*]} (Debian packages)"; exit 1; }
      say "installing Debian packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi ;;
  up)
    if answers; then say "a Docker engine already answers; using it"; exit 0; fi
    [ "$(id -u)" = 0 ] || { say "starting dockerd needs root"; exit 1; }
    command -v dockerd >/dev/null || { say "dockerd is missing: infra/docker/engine.sh install"; exit 1; }
    mkdir -p "$DIR"
    # No bridge and no iptables: containers use the host network (compose says network_mode: host).
    nohup dockerd --iptables=false --ip6tables=false --bridge=none >"$DIR/dockerd.log" 2>&1 &
    echo $! >"$PIDF"
    for _ in $(seq 1 150); do answers && { say "dockerd is up (pid $(cat "$PIDF"), log $DIR/dockerd.log)"; exit 0; }; sleep 0.2; done
    tail -n 20 "$DIR/dockerd.log" >&2; say "dockerd did not answer within 30 s"; exit 1 ;;
  down)
    if [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then
      pid=$(cat "$PIDF"); kill "$pid"
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && { say "dockerd did not stop in 30 s; killing it"; kill -9 "$pid"; }
      rm -f "$PIDF"; say "dockerd stopped"
    else
      say "no dockerd of this checkout is running"
    fi ;;
  status) if answers; then say "a Docker engine answers ($(client version -f '{{.Server.Version}}'))"; else say "no Docker engine answers"; exit 1; fi ;;
  *) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; exit $? ;;
esac
