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

CLUSTER=${CLUSTER:-kwok}            # kwok (processes, works everywhere) | kind (needs a Docker engine)
CLUSTER_NAME=${CLUSTER_NAME:-llmrollout}
CLUSTER_DIR="$LLMROLLOUT_CACHE/clusters/$CLUSTER_NAME"
KUBECONFIG_FILE="$CLUSTER_DIR/kubeconfig"
# kwokctl keeps each cluster's certificates, logs and pids here rather than in ~/.kwok.
export KWOK_WORKDIR="$LLMROLLOUT_CACHE/kwok-workdir"
export PATH="$KUBE_BIN_DIR:$KWOK_BIN_DIR:$ETCD_BIN_DIR:$HELM_BIN_DIR:$PATH"
