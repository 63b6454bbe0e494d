#!/usr/bin/env bash
# Single-host production stack (docker-compose.prod.yml): built images, restart policies,
# resource limits. Reads its configuration from the environment or ./.env (see docs/deploy.md);
# arguments go to compose.
#
#   scripts/prod.sh                                   # build and start in the background
#   scripts/prod.sh up -d --scale worker-messages=4   # scale a worker queue
#   scripts/prod.sh logs -f messaging
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/compose.sh
. scripts/compose.sh

if [ $# -eq 0 ]; then
  scripts/wheelhouse.sh
  set -- up -d --build
fi
compose -f docker-compose.prod.yml "$@"
