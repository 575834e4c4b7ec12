#!/usr/bin/env bash
# Build a local stand-in for python:3.11-slim where no container registry is reachable (this project's
# development machines reach only the package registries). Debian bookworm (Python 3.11) by debootstrap
# from the Debian mirror, imported with `podman import` under the official image's name, so the Dockerfile
# builds unchanged. Only for machines without a registry: with one, `make image` pulls the real image.
#   usage: deploy/image/standin-base.sh [engine]     (engine: podman, the default, or docker)
set -euo pipefail
engine="${1:-podman}"
name="docker.io/library/python:3.11-slim"
if "$engine" image exists "$name" 2>/dev/null; then
  echo "$name is present"; exit 0
fi
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d /tmp/rdc-standin.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null
# The machine's own trust store (it may hold a proxy's CA that the package registries are reached through).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# Where the official image has them: python and python3 on /usr/local/bin.
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
ln -sf /usr/bin/python3 "$root/usr/local/bin/python3"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | "$engine" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' - "$name" >/dev/null
echo "built $name (stand-in)"
