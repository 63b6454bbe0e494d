# Packaging and deployment targets (included by the main Makefile).
#   make tools            pinned helm and docker-compose into .tools/ (sha256-checked)
#   make wheelhouse       locked run-time wheels + the herald wheel into .tools/wheelhouse
#   make images           build every image (BASE_IMAGE, IMAGE_PREFIX, IMAGE_TAG)
#   make lint-packaging   offline validators: hadolint, compose schema, helm lint/template,
#                         kubernetes-validate --strict, chart and skaffold tests
#   make test-containers  real engine: base image, images, non-root, HEALTHCHECK, compose e2e

UV ?= uv
HERALD_TOOLS := .tools
HELM := $(HERALD_TOOLS)/bin/helm
DOCKER_COMPOSE := $(HERALD_TOOLS)/bin/docker-compose
BASE_IMAGE ?= python:3.11-slim-bookworm
IMAGE_PREFIX ?= herald-
IMAGE_TAG ?= dev

.PHONY: tools wheelhouse images lint-packaging test-containers

tools: $(HELM) $(DOCKER_COMPOSE)

$(HELM) $(DOCKER_COMPOSE): scripts/tools.sh | uv
	scripts/tools.sh
	@touch $(HELM) $(DOCKER_COMPOSE)

wheelhouse: uv
	scripts/wheelhouse.sh

images: wheelhouse
	BASE_IMAGE=$(BASE_IMAGE) IMAGE_PREFIX=$(IMAGE_PREFIX) IMAGE_TAG=$(IMAGE_TAG) docker/build-images.sh

lint-packaging: sync tools
	$(UV) run --frozen pytest tests/packaging -q -p no:randomly -p no:cacheprovider

# Starts its own engine (root; installs docker.io when absent), builds from a debootstrapped
# base cached in /var/lib/herald-docker, runs the stack end to end and stops the engine.
test-containers: sync tools
	HERALD_CONTAINER_TESTS=1 $(UV) run --frozen pytest tests/packaging/test_containers.py -v -s -p no:randomly \
	  -p no:cacheprovider --timeout 1500
