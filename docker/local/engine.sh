#!/usr/bin/env bash
# Start or stop a private Docker engine for building and testing the images on a machine
# without a running one (CI, laptops without Docker Desktop). Needs root.
#
#   docker/local/engine.sh start   # prints nothing; the engine listens on $HERALD_DOCKER_SOCK
#   docker/local/engine.sh stop
#   docker/local/engine.sh status  # exit 0 when the engine answers
#
# The data root survives between runs so the debootstrapped base image, the PostgreSQL and
# Redis test images and the layer cache are reused. The storage driver is overlay2 where the
# kernel allows an overlay mount on the data root's file system, else vfs, which works anywhere
# but copies a whole image for every layer and container (minutes per stack on a slow disk).
# HERALD_DOCKER_STORAGE_DRIVER forces one.
set -euo pipefail
# Debian installs dockerd (and apt's helpers) under sbin, which a non-login root PATH may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

DATA_ROOT="${HERALD_DOCKER_DATA_ROOT:-/var/lib/herald-docker}"
RUN_DIR="${HERALD_DOCKER_RUN_DIR:-/run/herald-docker}"
SOCK="${HERALD_DOCKER_SOCK:-$RUN_DIR/docker.sock}"
PIDFILE="$RUN_DIR/dockerd.pid"
LOG="$RUN_DIR/dockerd.log"
# The client must speak the engine's API version even where a newer CLI is first on PATH.
DOCKER="${HERALD_DOCKER_CLI:-docker}"

overlay_works() {  # an overlay mount inside the data root: what overlay2 needs
  local dir
  dir="$(mktemp -d "$DATA_ROOT/.overlay-probe.XXXXXX")" || return 1
  mkdir -p "$dir/lower" "$dir/upper" "$dir/work" "$dir/merged"
  if mount -t overlay overlay -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged" 2>/dev/null; then
    umount "$dir/merged"; rm -rf "$dir"; return 0
  fi
  rm -rf "$dir"; return 1
}

answers() { DOCKER_HOST="unix://$SOCK" "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  if answers; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "engine.sh: starting dockerd needs root" >&2; exit 1
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "engine.sh: installing Debian's docker.io" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; }
  fi
  mkdir -p "$DATA_ROOT" "$RUN_DIR"
  driver="${HERALD_DOCKER_STORAGE_DRIVER:-}"
  if [ -z "$driver" ]; then
    if overlay_works; then driver=overlay2; else driver=vfs; fi
  fi
  # Its own socket, exec root and data root keep this engine apart from any system one.
  setsid dockerd \
    --storage-driver "$driver" \
    --data-root "$DATA_ROOT" \
    --exec-root "$RUN_DIR/exec" \
    --pidfile "$PIDFILE" \
    -H "unix://$SOCK" \
    --iptables=true \
    >"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    if answers; then return 0; fi
    sleep 0.5
  done
  echo "engine.sh: dockerd did not answer on $SOCK within 30 s; last log lines:" >&2
  tail -n 30 "$LOG" >&2 || true
  exit 1
}

stop() {
  if [ -f "$PIDFILE" ]; then
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$PIDFILE"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
