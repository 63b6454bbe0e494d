#!/usr/bin/env bash
# Build the local stand-in for the official Python slim image: a minimal Debian bookworm made
# with debootstrap, with Debian's Python 3.11, imported into the engine as one layer.
# Used where no image can be pulled; every Dockerfile takes it through `--build-arg BASE_IMAGE`.
#
#   DOCKER_HOST=unix:///run/herald-docker/docker.sock docker/local/base-image.sh
#
# Prints the image reference. The tag carries a hash of this script, so an edited package
# list rebuilds it and an unchanged one is reused from the engine's data root.
set -euo pipefail
# Debian installs debootstrap under sbin, which a non-login root PATH may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

here="$(cd "$(dirname "$0")" && pwd)"
DOCKER="${HERALD_DOCKER_CLI:-docker}"
SUITE=bookworm
MIRROR="${HERALD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-venv brings ensurepip (the image builds a virtual environment); the rest is what
# the official slim image has that the services need at run time.
PACKAGES=python3,python3-venv,ca-certificates,tzdata,netbase

tag="$(sha256sum "$here/base-image.sh" | cut -c1-12)"
ref="herald-local/python:3.11-$SUITE-$tag"

if "$DOCKER" image inspect "$ref" >/dev/null 2>&1; then
  echo "$ref"; exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
fi

rootfs="$(mktemp -d /var/tmp/herald-rootfs.XXXXXX)"
chmod 0755 "$rootfs"  # mktemp makes it 0700, which would become the image's / mode
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >&2

cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
SOURCES
# Same trimming as the official slim images: no caches, docs or package lists in the layer.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
ln -sf python3 "$rootfs/usr/bin/python"

tar -C "$rootfs" -c . | "$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$ref" >&2
echo "$ref"
