#!/usr/bin/env bash
# Stops and removes the local cluster named $CLUSTER_NAME and its kubeconfig.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case "$CLUSTER" in
  kwok)
    if command -v kwokctl >/dev/null && kwokctl get clusters 2>/dev/null | grep -x "$CLUSTER_NAME" >/dev/null; then
      kwokctl delete cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG_FILE" >/dev/null 2>&1 || kwokctl delete cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG_FILE"
    fi ;;
  kind) kind delete cluster --name "$CLUSTER_NAME" ;;
  *) echo "CLUSTER must be kwok or kind, not '$CLUSTER'" >&2; exit 2 ;;
esac
rm -rf "$CLUSTER_DIR"
log "cluster $CLUSTER_NAME removed"
