#!/usr/bin/env bash
# The demo: a local cluster with the CRDs, then hack/demo.py narrates two rollouts on it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Starting the local cluster '$CLUSTER_NAME' ($CLUSTER)"
bash hack/cluster-up.sh
export KUBECONFIG="$KUBECONFIG_FILE" KUBECTL="$KUBE_BIN_DIR/kubectl"

say "Installing the LLMDeployment CRD and the Gateway API CRDs"
# The demo's 5s intervals are below the production CRD's 10s floor: render it with a lower one.
PYTHONPATH=operator .venv/bin/python -m llmrollout.api.crd --min-interval 5s \
  | kubectl apply --server-side --force-conflicts -f -
bash hack/install-gateway-api.sh
wait_established crd/llmdeployments.llmrollout.io

.venv/bin/python hack/demo.py

say "Done. The cluster keeps running: KUBECONFIG=$KUBECONFIG_FILE kubectl get llmd -A; 'make cluster-down' removes it."
