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

# The real LiteLLM proxy for the e2e tests, in a venv of its own beside the cached binaries (its boto3
# and the kubernetes client disagree on python-dateutil); keyed by its pin in pyproject.toml.
litellm_venv=$(.venv/bin/python -m tests.e2e.harness.litellm_proxy venv)
if [ ! -e "$litellm_venv/.installed" ]; then
  log "installing the LiteLLM proxy into $litellm_venv"
  rm -rf "$litellm_venv"  # a half-finished install from an interrupted run
  python3 -m venv "$litellm_venv"
  "$litellm_venv/bin/pip" install -q --upgrade pip
  mapfile -t litellm_requirements < <(.venv/bin/python -m tests.e2e.harness.litellm_proxy requirements)
  "$litellm_venv/bin/pip" install -q "${litellm_requirements[@]}"
  touch "$litellm_venv/.installed"
fi

"$HACK_DIR/build-binaries.sh"
