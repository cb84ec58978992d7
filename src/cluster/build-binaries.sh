#!/usr/bin/env bash
# Builds the Kubernetes binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl), etcd and crictl from the Go module proxy
# and caches them by version, because no binary downloads or container images are
# reachable where this project is developed and tested.
#
#   src/cluster/build-binaries.sh          the cluster's binaries
#   src/cluster/build-binaries.sh helm     helm alone (the chart tests need it)
#
# Binaries land in $KWC_BIN_CACHE (default <repo>/.cache/bin):
#   kubernetes-<KUBE_VERSION>/<each of KUBE_BINARIES>, etcd-<ETCD_VERSION>/etcd,
#   cri-tools-<CRICTL_VERSION>/crictl, helm-<HELM_VERSION>/helm
# A warm run (binaries present) does nothing. A cold run takes many minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
KUBE_VERSION="${KWC_KUBE_VERSION:-$KUBE_VERSION}"
ETCD_VERSION="${KWC_ETCD_VERSION:-$ETCD_VERSION}"
CRICTL_VERSION="${KWC_CRICTL_VERSION:-$CRICTL_VERSION}"
HELM_VERSION="${KWC_HELM_VERSION:-$HELM_VERSION}"
cache="${KWC_BIN_CACHE:-$repo/.cache/bin}"
kube_dir="$cache/kubernetes-$KUBE_VERSION"
etcd_dir="$cache/etcd-$ETCD_VERSION"
crictl_dir="$cache/cri-tools-$CRICTL_VERSION"
helm_dir="$cache/helm-$HELM_VERSION"
what="${1:-cluster}"

kube_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
started=$SECONDS
log() { printf '[build-binaries +%dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*" >&2; }

kube_present() {
  local b
  for b in "${kube_binaries[@]}"; do [[ -x "$kube_dir/$b" ]] || return 1; done
}
all_present() { kube_present && [[ -x "$etcd_dir/etcd" ]] && [[ -x "$crictl_dir/crictl" ]]; }

if [[ "$what" == helm ]]; then
  all_present() { [[ -x "$helm_dir/helm" ]]; }
  if all_present; then log "cached: helm $HELM_VERSION in $cache"; exit 0; fi
elif all_present; then
  log "cached: kubernetes $KUBE_VERSION, etcd $ETCD_VERSION and crictl $CRICTL_VERSION in $cache"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
build-binaries: Go is not installed (no 'go' on PATH).
The tests need the Kubernetes $KUBE_VERSION binaries, etcd $ETCD_VERSION, crictl
$CRICTL_VERSION and helm $HELM_VERSION, built from the Go module proxy. Install Go >= 1.24 (https://go.dev/doc/install), or
point the tests at an existing cluster with KWC_TEST_KUBECONFIG=/path/to/kubeconfig.
MSG
  exit 3
fi

mkdir -p "$cache"
# Two test runs, or a test run and `npm run cluster:up`, may start at once:
# one builds, the others wait for it and then find the binaries cached.
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
  if all_present; then log "built by the other process"; exit 0; fi
fi

if [[ "$what" == helm ]]; then
  log "cold build: helm $HELM_VERSION with $(go version | cut -d' ' -f3), $(nproc) cores"
else
  log "cold build: kubernetes $KUBE_VERSION (${kube_binaries[*]}), etcd $ETCD_VERSION, crictl $CRICTL_VERSION with $(go version | cut -d' ' -f3), $(nproc) cores"
fi
work="$cache/build"
mkdir -p "$work"

# Runs a long command with its output in a log file and prints a heartbeat
# with the number of packages compiled so far, so a cold build is never silent.
run_with_progress() {
  local what="$1" logfile="$2"; shift 2
  : >"$logfile"
  "$@" >"$logfile" 2>&1 &
  local pid=$! last=$SECONDS rc
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if ((SECONDS - last >= 20)); then
      last=$SECONDS
      log "$what: $(wc -l <"$logfile") packages/modules so far"
    fi
  done
  if wait "$pid"; then rc=0; else rc=$?; fi
  if ((rc != 0)); then
    log "$what FAILED (exit $rc); last lines of $logfile:"
    tail -n 40 "$logfile" >&2
    exit "$rc"
  fi
  log "$what done"
}

# CGO off and -trimpath: static, reproducible binaries that do not depend on
# a C toolchain. The tags are the ones Kubernetes' own release build uses.
# GOTOOLCHAIN is left as the user has it: with Go's default ("auto") an older
# Go fetches the toolchain these modules need from the module proxy.
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod"
build_flags=(-trimpath -tags=selinux,notest)

build_kubernetes() {
  kube_present && return 0
  local mod="$work/kubernetes-$KUBE_VERSION" staging="v0.${KUBE_VERSION#v1.}"
  rm -rf "$mod" && mkdir -p "$mod" && cd "$mod"
  go mod init kwc.local/kubernetes-build >/dev/null 2>&1
  log "fetching k8s.io/kubernetes $KUBE_VERSION go.mod"
  local upstream
  upstream="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  [[ -f "$upstream" ]] || { log "could not download k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
  # k8s.io/kubernetes requires its staging repositories at v0.0.0 and points
  # them at ./staging with replace directives that only apply inside its own
  # repository; outside it, each must be replaced by its published tag.
  local edits=() m
  for m in $(grep -oE '^[[:space:]]*k8s\.io/[a-z0-9.-]+ v0\.0\.0$' "$upstream" | awk '{print $1}' | sort -u); do
    edits+=("-replace=$m=$m@$staging")
  done
  log "replacing ${#edits[@]} staging modules with $staging"
  go mod edit "${edits[@]}" "-require=k8s.io/kubernetes@$KUBE_VERSION"
  # Kubernetes relies on the runtime defaults of the Go version it targets.
  local godebug
  godebug="$(grep -E '^godebug ' "$upstream" || true)"
  [[ -n "$godebug" ]] && printf '\n%s\n' "$godebug" >>go.mod
  local pkgs=() b
  for b in "${kube_binaries[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$KUBE_VERSION"); done
  run_with_progress "resolving kubernetes modules" "$mod/get.log" go get "${pkgs[@]}"
  local out="$mod/out"
  mkdir -p "$out" "$kube_dir"
  for b in "${kube_binaries[@]}"; do
    [[ -x "$kube_dir/$b" ]] && continue
    run_with_progress "compiling $b" "$mod/build-$b.log" \
      go build -v "${build_flags[@]}" -ldflags="-s -w $(version_ldflags)" -o "$out/$b" "k8s.io/kubernetes/cmd/$b"
    # Move into place as soon as it is built, so an interrupted build never
    # leaves a binary that looks cached but is incomplete.
    mv "$out/$b" "$kube_dir/$b"
  done
}

# Without these, the binaries report v0.0.0 and kubectl warns about version skew.
version_ldflags() {
  local v="${KUBE_VERSION#v}" pkg
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%.*}"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$pkg" "$KUBE_VERSION" "$pkg" "$major" "$pkg" "$minor" "$pkg"
  done
}

build_etcd() {
  [[ -x "$etcd_dir/etcd" ]] && return 0
  local mod="$work/etcd-$ETCD_VERSION"
  rm -rf "$mod" && mkdir -p "$mod" && cd "$mod"
  go mod init kwc.local/etcd-build >/dev/null 2>&1
  cat >main.go <<'GO'
// Package main runs etcd's own entry point; etcd publishes no command module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  run_with_progress "resolving etcd modules" "$mod/get.log" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  run_with_progress "compiling etcd" "$mod/build.log" go build -v "${build_flags[@]}" -ldflags="-s -w" -o "$mod/etcd" .
  mkdir -p "$etcd_dir"
  mv "$mod/etcd" "$etcd_dir/etcd"
}

build_crictl() {
  [[ -x "$crictl_dir/crictl" ]] && return 0
  local mod="$work/cri-tools-$CRICTL_VERSION"
  rm -rf "$mod" && mkdir -p "$mod" && cd "$mod"
  go mod init kwc.local/crictl-build >/dev/null 2>&1
  run_with_progress "resolving cri-tools modules" "$mod/get.log" go get "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  run_with_progress "compiling crictl" "$mod/build.log" go build -v "${build_flags[@]}" \
    -ldflags="-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" -o "$mod/crictl" sigs.k8s.io/cri-tools/cmd/crictl
  mkdir -p "$crictl_dir"
  mv "$mod/crictl" "$crictl_dir/crictl"
}

build_helm() {
  [[ -x "$helm_dir/helm" ]] && return 0
  local mod="$work/helm-$HELM_VERSION"
  rm -rf "$mod" && mkdir -p "$mod"
  # go install builds the module's own main package with its own go.mod (its
  # replace directives and versions), which is how helm is meant to be built.
  # Stamped as helm's Makefile does: its version, and the Kubernetes version
  # of its client-go (v0.X -> 1.X), which `helm template` assumes by default.
  local gomod client_minor
  gomod="$(env GOFLAGS= go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  client_minor="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")"
  [[ -n "$client_minor" ]] || { log "could not read the client-go version of helm $HELM_VERSION from $gomod"; exit 1; }
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata= -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_minor"
  done
  run_with_progress "compiling helm" "$mod/build.log" env GOFLAGS= GOBIN="$mod" go install -v "${build_flags[@]}" \
    -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mkdir -p "$helm_dir"
  mv "$mod/helm" "$helm_dir/helm"
}

if [[ "$what" == helm ]]; then
  build_helm
  rm -rf "$work"
  log "done: $helm_dir"
  exit 0
fi
build_etcd
build_kubernetes
build_crictl
rm -rf "$work"
log "done: $kube_dir, $etcd_dir, $crictl_dir"
