#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine: Debian's Prometheus, the Python venv
# (.venv) with the package and its dev tools, and the cached control-plane binaries.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v prometheus >/dev/null; then
  log "installing Prometheus from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt "$stamp" ]; then
  log "creating .venv and installing llmrollout[dev]"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi

"$HACK_DIR/build-binaries.sh"
