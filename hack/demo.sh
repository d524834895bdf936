#!/usr/bin/env bash
# The demo: a local cluster, the CRD, the operator, and an LLMDeployment it adopts; prints each step.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
NS=${DEMO_NAMESPACE:-llmrollout-demo}
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Starting the local cluster '$CLUSTER_NAME' ($CLUSTER)"
bash hack/cluster-up.sh
export KUBECONFIG="$KUBECONFIG_FILE"

say "Installing the LLMDeployment CRD"
kubectl apply --server-side --force-conflicts -f crds/
kubectl wait --for=condition=Established crd/llmdeployments.llmrollout.io --timeout=60s

say "Starting the operator (log: $CLUSTER_DIR/operator.log)"
.venv/bin/llmrollout run --namespace "$NS" --standalone >"$CLUSTER_DIR/operator.log" 2>&1 &
operator_pid=$!
trap 'kill $operator_pid 2>/dev/null || true; wait $operator_pid 2>/dev/null || true' EXIT

say "Applying examples/basic.yaml in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl delete llmd --all -n "$NS" --wait=true >/dev/null
kubectl apply -n "$NS" -f examples/basic.yaml

say "Waiting for the operator to adopt it"
for _ in $(seq 60); do
  phase=$(kubectl get llmd support-bot -n "$NS" -o jsonpath='{.status.phase}')
  [ -n "$phase" ] && break
  sleep 0.5
done
[ -n "$phase" ] || { echo "the operator did not report a phase; its log:"; tail -30 "$CLUSTER_DIR/operator.log"; exit 1; }

say "kubectl get llmd -n $NS"
kubectl get llmd -n "$NS"
say "Weights in status"
kubectl get llmd support-bot -n "$NS" -o jsonpath='{.status.weights}{"\n"}'
say "kubectl describe llmd support-bot -n $NS (conditions and events)"
kubectl describe llmd support-bot -n "$NS" | sed -n '/^Status:/,$p'

say "A spec the apiserver refuses (steps not increasing)"
sed 's/steps: \[5, 25, 50, 100\]/steps: [50, 25]/' examples/basic.yaml | kubectl apply -n "$NS" -f - || true

say "Done. The cluster keeps running: KUBECONFIG=$KUBECONFIG_FILE kubectl get llmd -A; 'make cluster-down' removes it."
