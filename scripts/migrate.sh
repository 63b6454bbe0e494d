#!/usr/bin/env bash
# Apply database migrations (`herald migrate`, i.e. alembic upgrade head).
#
#   scripts/migrate.sh            # against DATABASE_URL from the environment, as a local process
#   scripts/migrate.sh --compose  # in the compose stack's one-shot migrate container (dev file)
#   scripts/migrate.sh --prod     # the same with docker-compose.prod.yml
# Kubernetes runs the same command as a Helm pre-install/pre-upgrade hook.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") exec uv run herald migrate ;;
  --compose|--prod)
    # shellcheck source=scripts/compose.sh
    . scripts/compose.sh
    file=docker-compose.yml
    [ "$1" = --prod ] && file=docker-compose.prod.yml
    compose -f "$file" run --rm migrate ;;
  *) echo "usage: $0 [--compose|--prod]" >&2; exit 2 ;;
esac
