#!/usr/bin/env bash
# Local stack on docker-compose with hot reload (docker-compose.yml). Arguments go to compose.
#
#   scripts/dev.sh                          # build images, start everything, follow the logs
#   scripts/dev.sh --profile monitoring up -d   # plus Prometheus (:9090) and Grafana (:3000)
#   scripts/dev.sh down -v                  # stop and delete the volumes
#
# Services: gateway :8000 (all paths), contacts :8001, messaging :8002, automation :8003,
# webhook :8004, simulator :8090; PostgreSQL 127.0.0.1:5433, Redis 127.0.0.1:6380.
# The admin account is seeded from HERALD_ADMIN_EMAIL / HERALD_ADMIN_PASSWORD.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/compose.sh
. scripts/compose.sh

scripts/wheelhouse.sh
if [ $# -eq 0 ]; then
  set -- up --build
fi
compose -f docker-compose.yml "$@"
