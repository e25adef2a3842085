#!/usr/bin/env bash
# Checks the Kubernetes manifests offline (npm run check:k8s; CI runs it):
#   - renders each overlay of deploy/k8s/ with `kubectl kustomize`;
#   - validates every resource (deploy/k8s/check/validate.py): core kinds against the Kubernetes
#     schemas of the PyPI package kubernetes-validate, Strimzi and KEDA resources against their
#     CRDs' schemas in ../shared/k8s-crds (EM_K8S_CRDS), strictly (unknown fields are errors);
#   - checks the rendered Prometheus configuration and rules with a promtool that knows Kubernetes
#     service discovery (Debian's is built without it): Prometheus' own, built once from the Go
#     module proxy into .cache/promtool-k8s/ (about 2 minutes).
#
#   scripts/check-k8s.sh [OVERLAY...]     default: dev prod
#   scripts/check-k8s.sh --file FILE      validate one rendered file (the tests feed it broken ones)
#
# The Python tools go to a virtual environment in .cache/k8s-venv/ (PyPI), made on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
CRDS="${EM_K8S_CRDS:-../shared/k8s-crds}"
VENV=.cache/k8s-venv
PROMTOOL_VERSION=v0.316.0   # the Go module of Prometheus 3.x's promtool
PROMTOOL=.cache/promtool-k8s/promtool
say() { printf '[check-k8s] %s\n' "$*" >&2; }

[ -d "$CRDS" ] || { say "no CRDs at $CRDS (set EM_K8S_CRDS to the folder of ../shared/k8s-crds)"; exit 1; }
if ! "$VENV/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  say "installing kubernetes-validate into $VENV (PyPI)"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q kubernetes-validate==1.37.0
fi
validate() { "$VENV/bin/python" deploy/k8s/check/validate.py --crds "$CRDS" "$@"; }

if [ "${1:-}" = --file ]; then
  validate "${2:?--file takes a rendered manifest file}"
  exit
fi
if [ ! -x "$PROMTOOL" ]; then
  say "building promtool $PROMTOOL_VERSION with Kubernetes service discovery (Go module proxy) into $(dirname "$PROMTOOL")"
  # Prometheus' build tags leave out every service discovery but Kubernetes' (2 minutes, not 5)
  GOBIN="$PWD/$(dirname "$PROMTOOL")" GOFLAGS=-mod=mod go install -tags remove_all_sd,enable_kubernetes_sd "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
fi
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
overlays=("$@"); [ ${#overlays[@]} -gt 0 ] || overlays=(dev prod)
for overlay in "${overlays[@]}"; do
  say "overlay $overlay"
  kubectl kustomize "deploy/k8s/overlays/$overlay" > "$out/$overlay.yaml"
  validate --prometheus-out "$out/prometheus-$overlay" "$out/$overlay.yaml"
  "$PROMTOOL" check config "$out/prometheus-$overlay/prometheus.yml"
done
