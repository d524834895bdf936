#!/usr/bin/env bash
# Installs the Gateway API standard-channel CRDs (HTTPRoute, Gateway, ...) into the cluster in $KUBECONFIG.
# The YAML comes from the Go module sigs.k8s.io/gateway-api at $GATEWAY_API_VERSION (hack/versions.env),
# fetched through the Go module proxy once per machine and kept in $GATEWAY_API_DIR.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${KUBECONFIG:=$KUBECONFIG_FILE}"
export KUBECONFIG

fetch() {
  if compgen -G "$GATEWAY_API_DIR/*.yaml" >/dev/null; then
    log "gateway-api $GATEWAY_API_VERSION: cached in $GATEWAY_API_DIR"
    return
  fi
  command -v go >/dev/null || { echo "go is not installed; it fetches the CRDs from the module proxy" >&2; exit 1; }
  log "fetching sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION from the Go module proxy"
  local info dir
  # Outside any module, so a go.mod up the tree cannot change what is resolved. On failure go still
  # prints the JSON, with the reason in "Error", which is what we report.
  info=$(cd / && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION") || true
  dir=$(printf '%s' "$info" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit("go mod download gave no JSON")
if d.get("Error") or not d.get("Dir"):
    sys.exit(d.get("Error") or "no module Dir")
print(d["Dir"])') || { echo "cannot fetch sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION (see above)" >&2; exit 1; }
  if ! compgen -G "$dir/config/crd/standard/*.yaml" >/dev/null; then
    echo "no config/crd/standard/*.yaml in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION ($dir)" >&2
    exit 1
  fi
  # Copy into a temporary folder and rename, so an interrupted run never leaves a partial cache.
  local tmp="$GATEWAY_API_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp "$dir"/config/crd/standard/*.yaml "$tmp/"
  # Files in the module cache are read-only; the cache copy should be removable by `rm -rf`.
  chmod u+w "$tmp"/*.yaml
  rm -rf "$GATEWAY_API_DIR"
  mv "$tmp" "$GATEWAY_API_DIR"
}

fetch
log "applying Gateway API $GATEWAY_API_VERSION standard CRDs to $(kubectl config current-context 2>/dev/null || echo "$KUBECONFIG")"
kubectl apply --server-side --field-manager=llmrollout-hack -f "$GATEWAY_API_DIR" >&2
mapfile -t crds < <(kubectl get -f "$GATEWAY_API_DIR" -o name)
wait_established "${crds[@]}"
log "Gateway API CRDs established: ${crds[*]#*/}"
