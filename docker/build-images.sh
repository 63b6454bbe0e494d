#!/usr/bin/env bash
# Build every Herald image from docker/Dockerfile (run from anywhere; needs `make wheelhouse`).
#
#   docker/build-images.sh [target...]
#
#   BASE_IMAGE     base with Python 3.11 (default: the official python:3.11-slim-bookworm)
#   IMAGE_PREFIX   name prefix (default: herald-), e.g. registry.example.com/herald/herald-
#   IMAGE_TAG      tag (default: dev)
#
# BuildKit (the default of current engines; DOCKER_BUILDKIT=1 for 20.10) builds only the stages
# a target needs and shares the cached ones between targets.
set -euo pipefail

cd "$(dirname "$0")/.."
ALL_TARGETS=(contacts messaging automation webhook simulator gateway worker jobs migrate)
BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim-bookworm}"
IMAGE_PREFIX="${IMAGE_PREFIX:-herald-}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
DOCKER="${HERALD_DOCKER_CLI:-docker}"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

for target in "${targets[@]}"; do
  start=$SECONDS
  DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-1}" "$DOCKER" build --quiet \
    --file docker/Dockerfile \
    --target "$target" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg VERSION="$VERSION" \
    --tag "$IMAGE_PREFIX$target:$IMAGE_TAG" \
    . >/dev/null
  echo "built $IMAGE_PREFIX$target:$IMAGE_TAG in $((SECONDS - start)) s"
done
