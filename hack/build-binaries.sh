#!/usr/bin/env bash
# Builds, once per machine and version, the control-plane binaries the local cluster runs:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes), etcd
# (go.etcd.io/etcd/server/v3), kwok/kwokctl (sigs.k8s.io/kwok) and helm, all from the Go module proxy.
# Each lands in $LLMROLLOUT_CACHE/<component>-<version>/ and is skipped when already there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Linking kube-apiserver takes several GB; two parallel links on this machine are fine, more are not.
export GOMAXPROCS=${GOMAXPROCS:-2}

build_kubernetes() {
  local components=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=()
  for c in "${components[@]}"; do [ -x "$KUBE_BIN_DIR/$c" ] || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] && { log "kubernetes $KUBE_VERSION: cached in $KUBE_BIN_DIR"; return; }

  local work minor staging_version gomod
  work=$(mktemp -d)
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  # Staging modules (k8s.io/api, k8s.io/client-go, ...) are tagged v0.<minor>.<patch>.
  staging_version="v0.${KUBE_VERSION#v1.}"
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module llmrollout.io/hack/kubernetes"
    echo "go 1.24.0"
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with local folders,
    # which `go install pkg@version` refuses; pin each to its published tag instead.
    grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } >"$work/go.mod"
  local pkg=k8s.io/component-base/version cpkg=k8s.io/client-go/pkg/version
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ldflags="-s -w"
  for p in $pkg $cpkg; do
    ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  mkdir -p "$KUBE_BIN_DIR"
  for c in "${missing[@]}"; do
    log "building $c $KUBE_VERSION (several minutes on 2 cores)"
    (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$KUBE_BIN_DIR/$c.tmp" "k8s.io/kubernetes/cmd/$c")
    mv "$KUBE_BIN_DIR/$c.tmp" "$KUBE_BIN_DIR/$c"
  done
  rm -rf "$work"
}

build_etcd() {
  [ -x "$ETCD_BIN_DIR/etcd" ] && { log "etcd $ETCD_VERSION: cached in $ETCD_BIN_DIR"; return; }
  local work; work=$(mktemp -d)
  # etcd's server module also carries replace lines (to sibling folders); a wrapper module avoids them.
  cat >"$work/go.mod" <<MOD
module llmrollout.io/hack/etcd
go 1.26.0
require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  log "building etcd $ETCD_VERSION"
  mkdir -p "$ETCD_BIN_DIR"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$ETCD_BIN_DIR/etcd.tmp" "$ETCD_BIN_DIR/etcd"
  rm -rf "$work"
}

build_kwok() {
  [ -x "$KWOK_BIN_DIR/kwok" ] && [ -x "$KWOK_BIN_DIR/kwokctl" ] && { log "kwok $KWOK_VERSION: cached in $KWOK_BIN_DIR"; return; }
  log "building kwok and kwokctl $KWOK_VERSION"
  mkdir -p "$KWOK_BIN_DIR"
  GOFLAGS= GOBIN="$KWOK_BIN_DIR" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
}

build_helm() {
  [ -x "$HELM_BIN_DIR/helm" ] && { log "helm $HELM_VERSION: cached in $HELM_BIN_DIR"; return; }
  log "building helm $HELM_VERSION"
  mkdir -p "$HELM_BIN_DIR"
  GOFLAGS= GOBIN="$HELM_BIN_DIR" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

command -v go >/dev/null || { echo "go is not installed; run 'make setup'" >&2; exit 1; }
build_kwok
build_etcd
build_kubernetes
build_helm
log "binaries ready under $LLMROLLOUT_CACHE"
