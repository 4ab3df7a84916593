# Shared settings of the test bed scripts (sourced, not run).
# State lives under $MODELOPS_CLUSTER_DIR; builds are cached under $MODELOPS_CACHE_DIR so that a
# fresh clone reuses them.
set -euo pipefail

TESTBED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTBED_DIR/../.." && pwd)
CLUSTER_DIR=${MODELOPS_CLUSTER_DIR:-/tmp/modelops-cluster}
CACHE_DIR=${MODELOPS_CACHE_DIR:-$HOME/.cache/modelops}
K8S_VERSION=v1.36.3
NODE_NAME=modelops-node
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
POD_CIDR=10.88.0.0/16
API_PORT=6443
export KUBECONFIG=$CLUSTER_DIR/kubeconfig
export PATH=$CLUSTER_DIR/bin:$PATH

# ctr against the test bed's containerd, without its cgroup v1 deprecation notice on every call.
ctr_k8s() {
  "$CLUSTER_DIR/bin/ctr" --address "$CLUSTER_DIR/containerd/containerd.sock" -n k8s.io "$@" \
    2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2)
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then die "timed out after ${timeout}s waiting for $what"; fi
    sleep 0.5
  done
}
