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
# The address ranges are settable, for a host whose own routes already use the defaults (`up`
# refuses ranges that collide with the host's routes, and says which).
SERVICE_CIDR=${MODELOPS_SERVICE_CIDR:-10.96.0.0/16}
POD_CIDR=${MODELOPS_POD_CIDR:-10.88.0.0/16}
API_PORT=6443
# What the test bed makes on the host carries these names, so that `down` removes only that:
# the pods' bridge, the bridge that holds the fallback routes, the CNI network (its iptables rules
# carry it in their comments) and the cgroup under which every process of the test bed runs (the
# kubelet's `cgroupRoot`, and the daemons' own leaf beside it).
POD_BRIDGE=modelops-pods
FALLBACK_BRIDGE=modelops0
CNI_NETWORK=modelops-testbed
CGROUP_NAME=${MODELOPS_CGROUP_NAME:-modelops-testbed}
# The S3 server (SeaweedFS, one `weed server` process): its S3 API listens on the node's address,
# which the host and the pods both reach; the master, volume server and filer (HTTP on these ports,
# gRPC on each plus 10000) on 127.0.0.1 only. `up` writes the endpoint and an admin identity to
# $S3_ENV; every namespace of `tenant` gets the prefix `s3://$S3_BUCKET/<namespace>/`.
S3_PORT=${MODELOPS_S3_PORT:-8333}
WEED_MASTER_PORT=9333
WEED_VOLUME_PORT=8380
WEED_FILER_PORT=8888
S3_BUCKET=modelops
S3_REGION=us-east-1
S3_ENV=$CLUSTER_DIR/s3.env
# Prometheus listens on the node's address too (`up` writes it to $CLUSTER_DIR/prometheus.env).
PROMETHEUS_PORT=${MODELOPS_PROMETHEUS_PORT:-9090}
# prometheus_address: host:port of the test bed's Prometheus, as `up` wrote it.
prometheus_address() { sed -n 's|^PROMETHEUS_URL=http://||p' "$CLUSTER_DIR/prometheus.env"; }
# Kueue serves its admission and conversion webhooks on the node's address, its health locally.
KUEUE_WEBHOOK_PORT=${MODELOPS_KUEUE_WEBHOOK_PORT:-9443}
KUEUE_HEALTH_PORT=${MODELOPS_KUEUE_HEALTH_PORT:-9444}
# Where Kueue reads its metrics certificate, a fixed path (up writes it, down removes it).
KUEUE_METRICS_CERTS=/etc/kueue/metrics/certs
# The label that puts a namespace's Jobs under Kueue's Job webhooks (tests/training.rs sets it).
KUEUE_NAMESPACE_LABEL=testbed.modelops.dev/kueue
export KUBECONFIG=$CLUSTER_DIR/kubeconfig
export PATH=$CLUSTER_DIR/bin:$PATH

# ctr against the test bed's containerd, without its cgroup v1 deprecation notice on every call.
ctr_k8s() {
  "$CLUSTER_DIR/bin/ctr" --address "$CLUSTER_DIR/containerd/containerd.sock" -n k8s.io "$@" \
    2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2)
}

# ---------------------------------------------------------------- addresses
# ip_to_int A.B.C.D / int_to_ip N: IPv4 addresses as integers, for range arithmetic.
ip_to_int() { local IFS=.; set -- $1; echo $((($1 << 24) + ($2 << 16) + ($3 << 8) + $4)); }
int_to_ip() { echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"; }
# cidr_range A.B.C.D/N: prints the first and last address of the range as integers.
cidr_range() {
  local base=${1%/*} bits=${1#*/}
  [ "$bits" = "$1" ] && bits=32
  local size=$((1 << (32 - bits))) first
  first=$(($(ip_to_int "$base") & ~(size - 1) & 0xffffffff))
  echo "$first $((first + size - 1))"
}
# cidrs_overlap A B: whether two ranges share an address.
cidrs_overlap() {
  local a b
  read -r -a a <<<"$(cidr_range "$1")"
  read -r -a b <<<"$(cidr_range "$2")"
  ((a[0] <= b[1] && b[0] <= a[1]))
}
# nth_address CIDR N: the Nth address of a range (1: the first after the network address).
nth_address() { local r; read -r -a r <<<"$(cidr_range "$1")"; int_to_ip $((r[0] + $2)); }
KUBERNETES_SERVICE_IP=$(nth_address "$SERVICE_CIDR" 1)

# ---------------------------------------------------------------- processes and cgroups
# The cgroup hierarchies of this host: the unified one alone on a cgroup v2 host, every mounted
# one on a v1 or hybrid host.
cgroup_hierarchies() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup; return; fi
  awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts
}
# The hierarchy in which the test bed tracks its processes (every process is in exactly one
# cgroup of each hierarchy): pids on v1, the unified one on v2.
tracking_hierarchy() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup
  elif [ -d /sys/fs/cgroup/pids ]; then echo /sys/fs/cgroup/pids
  else echo /sys/fs/cgroup/unified; fi
}
# Every process in the test bed's cgroup (the daemons, the containerd shims, the containers).
testbed_pids() {
  local root
  root="$(tracking_hierarchy)/$CGROUP_NAME"
  [ -d "$root" ] || return 0
  find "$root" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}
# start_time PID: the process' start time (field 22 of /proc/PID/stat, after the command name,
# which may hold spaces), which tells a process from a later one that got the same PID.
start_time() { local stat; stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; stat=${stat##*) }; set -- $stat; echo "${20}"; }
# pid_alive PIDFILE: the process a pid file names ("PID START") still runs, and is the same one.
pid_alive() {
  local pid start state
  [ -f "$1" ] && read -r pid start <"$1" || return 1
  [ -n "$pid" ] && [ -n "$start" ] || return 1
  [ "$(start_time "$pid")" = "$start" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
  [ "$state" != Z ]
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

# ---------------------------------------------------------------- the S3 server
# weed_shell: runs the `weed shell` commands on standard input against the test bed's SeaweedFS
# (through the master and filer on 127.0.0.1); fails when one of them fails.
weed_shell() {
  "$CLUSTER_DIR/bin/weed" -logdir="$CLUSTER_DIR/logs" shell -master="127.0.0.1:$WEED_MASTER_PORT" \
    -filer="127.0.0.1:$WEED_FILER_PORT"
}
# weed_grpc_sockets: the Unix sockets `weed server` makes for its gRPC services at fixed paths
# in /tmp (no flag moves them); `down` removes them.
weed_grpc_sockets() {
  echo "/tmp/seaweedfs-master-grpc-$((WEED_MASTER_PORT + 10000)).sock"
  echo "/tmp/seaweedfs-volume-grpc-$((WEED_VOLUME_PORT + 10000)).sock"
  echo "/tmp/seaweedfs-filer-grpc-$((WEED_FILER_PORT + 10000)).sock"
  echo "/tmp/seaweedfs-s3-grpc-$((S3_PORT + 10000)).sock"
}
# s3_env KEY: a value of $S3_ENV.
s3_env() { sed -n "s/^$1=//p" "$S3_ENV"; }
# s3_status ACCESS_KEY SECRET_KEY PATH [CURL ARGS...]: the HTTP status of one SigV4-signed request
# to the test bed's S3 endpoint (PATH with its query, already percent-encoded).
s3_status() {
  local key=$1 secret=$2 path=$3; shift 3
  # The credentials go through a config on standard input, not the command line (ps shows that).
  printf 'user = "%s:%s"\n' "$key" "$secret" |
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 --aws-sigv4 "aws:amz:$S3_REGION:s3" \
      -K - -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" "$(s3_env AWS_ENDPOINT_URL)$path" || true
}
# ensure_s3_bucket: the one bucket that holds every tenant's prefix exists.
ensure_s3_bucket() {
  [ "$(s3_status "$(s3_env AWS_ACCESS_KEY_ID)" "$(s3_env AWS_SECRET_ACCESS_KEY)" "/$S3_BUCKET" -I)" = 200 ] && return
  log "creating the bucket $S3_BUCKET"
  echo "s3.bucket.create -name $S3_BUCKET" | weed_shell >/dev/null
}
# s3_tenant_location NAMESPACE: where a namespace's artifacts live, the one rule that `tenant` and
# the operator share: the bucket $S3_BUCKET, the prefix "<namespace>/". Its identity may read,
# write and list there and nowhere else.
s3_tenant_location() { echo "s3://$S3_BUCKET/$1/"; }
