# Shared settings for the hack/ scripts; source it, do not run it.
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HACK_DIR/.." && pwd)
# shellcheck source=versions.env
. "$HACK_DIR/versions.env"
# The cache lives outside the clone so every clone on the machine shares one build.
LLMROLLOUT_CACHE=${LLMROLLOUT_CACHE:-$HOME/.cache/llmrollout}
KUBE_BIN_DIR="$LLMROLLOUT_CACHE/kubernetes-$KUBE_VERSION"
ETCD_BIN_DIR="$LLMROLLOUT_CACHE/etcd-$ETCD_VERSION"
KWOK_BIN_DIR="$LLMROLLOUT_CACHE/kwok-$KWOK_VERSION"
GATEWAY_API_DIR="$LLMROLLOUT_CACHE/gateway-api-$GATEWAY_API_VERSION"
HELM_BIN_DIR="$LLMROLLOUT_CACHE/helm-$HELM_VERSION"
export LLMROLLOUT_CACHE
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# kubectl wait --for=condition=Established on CRDs; a CRD applied a moment ago may have no
# status.conditions yet, which kubectl reports as an error instead of waiting, so retry that.
wait_established() {
  local deadline=$((SECONDS + 60)) output
  until output=$(kubectl wait --for=condition=Established --timeout=60s "$@" 2>&1); do
    if ((SECONDS >= deadline)); then
      printf '%s\n' "$output" >&2
      return 1
    fi
    sleep 1
  done
}

CLUSTER=${CLUSTER:-kwok}            # kwok (processes, works everywhere) | kind (needs a Docker engine)
CLUSTER_NAME=${CLUSTER_NAME:-llmrollout}
CLUSTER_DIR="$LLMROLLOUT_CACHE/clusters/$CLUSTER_NAME"
KUBECONFIG_FILE="$CLUSTER_DIR/kubeconfig"
# kwokctl keeps each cluster's certificates, logs and pids here rather than in ~/.kwok.
export KWOK_WORKDIR="$LLMROLLOUT_CACHE/kwok-workdir"
export PATH="$KUBE_BIN_DIR:$KWOK_BIN_DIR:$ETCD_BIN_DIR:$HELM_BIN_DIR:$PATH"
