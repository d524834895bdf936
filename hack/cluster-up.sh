#!/usr/bin/env bash
# Starts (or reuses) the local cluster named $CLUSTER_NAME and writes its kubeconfig to
# $LLMROLLOUT_CACHE/clusters/$CLUSTER_NAME/kubeconfig (`make -s kubeconfig` prints the path).
#   CLUSTER=kwok (default): kube-apiserver, controller-manager, scheduler, etcd and kwok run as local
#     processes built by hack/build-binaries.sh; kwok's fake nodes make Deployments get Running pods.
#   CLUSTER=kind: a kind cluster, for machines with a Docker engine and `kind` on PATH.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NODES=${NODES:-2}

healthy() { kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1; }

# kwokctl logs JSON lines meant for machines; they go to a file, shown only when a step fails.
KWOKCTL_LOG="$LLMROLLOUT_CACHE/clusters/$CLUSTER_NAME.kwokctl.log"
quiet_kwokctl() {
  mkdir -p "$(dirname "$KWOKCTL_LOG")"
  if ! kwokctl "$@" >>"$KWOKCTL_LOG" 2>&1; then
    tail -n 40 "$KWOKCTL_LOG" >&2
    return 1
  fi
}

up_kwok() {
  "$HACK_DIR/build-binaries.sh"
  if kwokctl get clusters 2>/dev/null | grep -x "$CLUSTER_NAME" >/dev/null; then
    if healthy; then
      log "cluster $CLUSTER_NAME is already running"
      return
    fi
    # Left behind by a run whose processes were ended: start its components again, else start over.
    log "cluster $CLUSTER_NAME exists but is not serving; starting it"
    if ! quiet_kwokctl start cluster --name "$CLUSTER_NAME" --timeout 2m || ! healthy; then
      log "could not restart $CLUSTER_NAME; recreating it"
      quiet_kwokctl delete cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG_FILE" || true
    fi
  fi
  if ! healthy; then
    mkdir -p "$CLUSTER_DIR"
    : >"$KUBECONFIG_FILE"
    log "creating kwok cluster $CLUSTER_NAME (Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION)"
    KWOK_KUBE_VERSION=$KUBE_VERSION KWOK_ETCD_VERSION=${ETCD_VERSION#v} \
    KWOK_KUBECTL_BINARY="$KUBE_BIN_DIR/kubectl" \
      quiet_kwokctl create cluster --name "$CLUSTER_NAME" --runtime binary \
        --kube-apiserver-binary "$KUBE_BIN_DIR/kube-apiserver" \
        --kube-controller-manager-binary "$KUBE_BIN_DIR/kube-controller-manager" \
        --kube-scheduler-binary "$KUBE_BIN_DIR/kube-scheduler" \
        --kwok-controller-binary "$KWOK_BIN_DIR/kwok" \
        --etcd-binary "$ETCD_BIN_DIR/etcd" \
        --kubeconfig "$KUBECONFIG_FILE" \
        --wait 3m --timeout 5m
  fi
  local have
  have=$(kubectl --kubeconfig "$KUBECONFIG_FILE" get nodes --no-headers 2>/dev/null | wc -l)
  if [ "$have" -lt "$NODES" ]; then
    quiet_kwokctl scale node --name "$CLUSTER_NAME" --replicas "$NODES"
  fi
  kubectl --kubeconfig "$KUBECONFIG_FILE" wait --for=condition=Ready nodes --all --timeout=120s >/dev/null
}

up_kind() {
  command -v kind >/dev/null || { echo "CLUSTER=kind needs 'kind' on PATH and a running Docker engine" >&2; exit 1; }
  mkdir -p "$CLUSTER_DIR"
  if ! kind get clusters 2>/dev/null | grep -x "$CLUSTER_NAME" >/dev/null; then
    kind create cluster --name "$CLUSTER_NAME" --image "kindest/node:$KUBE_VERSION" --wait 3m
  fi
  kind get kubeconfig --name "$CLUSTER_NAME" >"$KUBECONFIG_FILE"
}

case "$CLUSTER" in
  kwok) up_kwok ;;
  kind) up_kind ;;
  *) echo "CLUSTER must be kwok or kind, not '$CLUSTER'" >&2; exit 2 ;;
esac
log "cluster $CLUSTER_NAME ready: $(kubectl --kubeconfig "$KUBECONFIG_FILE" version -o json | python3 -c 'import json,sys; print("server", json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
log "KUBECONFIG=$KUBECONFIG_FILE"
