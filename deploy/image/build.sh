#!/usr/bin/env bash
# `make image`: build the rd-connector image with docker, or podman where docker has no engine.
#   RDC_IMAGE (default rd-connector:local) names it; CONTAINER_ENGINE=podman|docker chooses the engine.
# Without a reachable registry (podman only) a python:3.11-slim stand-in is made first (standin-base.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${RDC_IMAGE:-rd-connector:local}"
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
  elif command -v podman >/dev/null; then engine=podman
  else echo "make image: neither a docker engine nor podman is available" >&2; exit 1; fi
fi
extra=()
if [ "$engine" = podman ]; then
  "$engine" image exists docker.io/library/python:3.11-slim || \
    "$engine" pull --quiet docker.io/library/python:3.11-slim 2>/dev/null || deploy/image/standin-base.sh podman
  # runc: this machine's cgroups are refused by crun, podman's default runtime here.
  extra+=(--runtime "${PODMAN_RUNTIME:-runc}" --pull=never --format docker)
fi
started=$(date +%s)
"$engine" build "${extra[@]}" --tag "$image" --file Dockerfile .
echo "built $image with $engine in $(( $(date +%s) - started )) s"
"$engine" image inspect "$image" --format 'size {{.Size}} bytes'
