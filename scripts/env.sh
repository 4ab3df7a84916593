# Sourced by the project's scripts: the toolchain settings every build shares.
# - libtorch comes from PyPI's torch wheel, installed into a virtual environment in the cache;
#   tch's build script finds it through LIBTORCH_USE_PYTORCH and the venv's python.
# - cargo builds into a target folder in the cache, so that a fresh clone reuses earlier builds.
set -euo pipefail
MODELOPS_CACHE_DIR=${MODELOPS_CACHE_DIR:-$HOME/.cache/modelops}
TORCH_VERSION=2.13.0
MODELOPS_VENV=$MODELOPS_CACHE_DIR/venv
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MODELOPS_CACHE_DIR/target}

# The cargo profile a script builds with: MODELOPS_PROFILE when set, else the script's default
# (`dev` for the test bed's images, as the tests build; `release` for the serving benchmark).
cargo_profile() { echo "${MODELOPS_PROFILE:-$1}"; }
# Where cargo puts what `profile` builds.
profile_dir() { if [ "$1" = dev ]; then echo "$CARGO_TARGET_DIR/debug"; else echo "$CARGO_TARGET_DIR/$1"; fi; }
# Set even before ensure_torch, so that no cargo call from a sourced shell rebuilds torch-sys for
# a changed environment.
export VIRTUAL_ENV=$MODELOPS_VENV
export PATH=$MODELOPS_VENV/bin:$PATH
export LIBTORCH_USE_PYTORCH=1

# ensure_torch: the venv with torch (for tch, the images and the Python baselines in bench/).
ensure_torch() {
  if ! "$MODELOPS_VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    echo "installing torch $TORCH_VERSION from PyPI into $MODELOPS_VENV" >&2
    mkdir -p "$MODELOPS_CACHE_DIR"
    [ -x "$MODELOPS_VENV/bin/python" ] || python3 -m venv "$MODELOPS_VENV"
    "$MODELOPS_VENV/bin/pip" install -q "torch==$TORCH_VERSION" numpy
  fi
  TORCH_LIB_DIR=$("$MODELOPS_VENV/bin/python" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export TORCH_LIB_DIR
}

# The Open Inference Protocol's own clients, for the black-box tests (tests/clients.rs) and the
# serving benchmark's KServe server. Pinned, so that a fresh machine tests against what was tested.
TRITONCLIENT_VERSION=2.73.0
KSERVE_VERSION=0.21.0
ensure_clients() {
  ensure_torch
  if ! "$MODELOPS_VENV/bin/python" - <<EOF 2>/dev/null
import importlib.metadata as m, sys
sys.exit(m.version("tritonclient") != "$TRITONCLIENT_VERSION" or m.version("kserve") != "$KSERVE_VERSION" or not m.version("grpcio"))
EOF
  then
    echo "installing tritonclient $TRITONCLIENT_VERSION and kserve $KSERVE_VERSION from PyPI into $MODELOPS_VENV" >&2
    "$MODELOPS_VENV/bin/pip" install -q "tritonclient[http,grpc]==$TRITONCLIENT_VERSION" "kserve==$KSERVE_VERSION"
  fi
}

# Headless Chromium, from Debian, for the dashboard's tests (tests/dashboard.rs loads each page and
# saves screenshots).
ensure_chromium() {
  if ! command -v chromium >/dev/null; then
    echo "installing chromium from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
}
