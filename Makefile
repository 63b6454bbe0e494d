# Herald: `make run` starts everything locally, `make test` checks everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv comes from PATH, or is installed with pip into .herald/tools on first use (a fixed path,
# wherever this Python's pip would put scripts).
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.herald/tools/bin/uv)
RUN := $(UV) run --frozen
# Scripts and tests call uv/uvx by name (scripts/tools.sh fetches helm through uvx).
export PATH := $(patsubst %/,%,$(dir $(UV))):$(PATH)
# pytest-xdist workers; the suite is sized for a 2-core machine.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

# Other areas add their targets here (mk/packaging.mk: tools, lint-packaging, test-containers).
-include mk/*.mk

# The packaging checks run as part of `make test` once mk/packaging.mk defines them.
MK_FILES := $(wildcard mk/*.mk)
defined = $(if $(MK_FILES),$(shell grep -qsE '^$(1)[[:space:]]*:' $(MK_FILES) && echo $(1)))
PACKAGING_CHECKS := $(call defined,lint-packaging) $(call defined,test-containers)
# The static security scan (mk/security.mk) runs with the checks, before the suite.
SECURITY_CHECKS := $(call defined,security)

.PHONY: help run dev test check lint typecheck pytest test-fast sync uv migrate bench bench-quick bench-tools clean clean-data

help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --quiet --target $(CURDIR)/.herald/tools uv \
	  || python3 -m pip install --quiet --break-system-packages --target $(CURDIR)/.herald/tools uv

uv: $(UV)

sync: uv  ## create/update the environment from uv.lock
	$(UV) sync --frozen

run: sync  ## run the whole stack on http://localhost:8000 (Ctrl-C stops it)
	$(RUN) herald dev

dev: run

test: sync  ## lint, type-check, security scan, the whole test suite, the packaging checks, then bench-quick
	$(MAKE) --no-print-directory lint typecheck $(SECURITY_CHECKS) pytest $(PACKAGING_CHECKS) bench-quick

check: test

lint:  ## ruff over the repository
	$(RUN) ruff check .

typecheck:  ## mypy over libs and services
	$(RUN) mypy libs services

pytest:  ## the test suite on real PostgreSQL and Redis (embedded ones when none are running)
	$(RUN) pytest tests -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider --durations=10 $(PYTEST_ARGS)

test-fast:  ## the test suite without the slow end-to-end tests
	$(RUN) pytest tests -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

migrate: sync  ## apply database migrations to DATABASE_URL
	$(RUN) herald migrate

bench: sync bench-tools  ## the full benchmarks (results in bench/results/)
	$(RUN) python -m bench

bench-quick: sync bench-tools  ## a short benchmark run
	$(RUN) python -m bench --quick

# wrk drives the closed-loop capacity runs; it is a Debian package (root, or sudo without a
# password, installs it). Without it the benchmarks fall back to Python load generators.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
bench-tools:
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package wrk) for the benchmarks"; \
	  $(SUDO) apt-get install -y -qq wrk >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update -qq >/dev/null 2>&1 && $(SUDO) apt-get install -y -qq wrk >/dev/null 2>&1; } \
	  || echo "wrk could not be installed: capacity runs use the Python load generators"; }

clean:  ## remove caches and build output (keeps .herald/ data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis dist build
	find . -name __pycache__ -type d -not -path './.venv/*' -prune -exec rm -rf {} +

clean-data:  ## delete the local data folder .herald/ (embedded database, Redis, generated secrets)
	rm -rf .herald
