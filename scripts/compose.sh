#!/usr/bin/env bash
# The Compose v2 command: `docker compose` where the plugin is installed, otherwise the pinned
# standalone binary that `make tools` puts in .tools/bin. Sourced by dev.sh, prod.sh, migrate.sh.
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose "$@"
  else
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    [ -x "$root/.tools/bin/docker-compose" ] || "$root/scripts/tools.sh"
    "$root/.tools/bin/docker-compose" "$@"
  fi
}
