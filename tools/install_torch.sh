#!/usr/bin/env bash
# Install PyTorch into the given Python environment without pulling a
# multi-GB CUDA build onto a machine that has no NVIDIA GPU.
#   tools/install_torch.sh PYTHON
# Order: keep a torch that is already installed; with an NVIDIA GPU take the
# default (CUDA) wheel; otherwise prefer a local CPU wheel (pip's find-links),
# then PyTorch's CPU index, then the default wheel (macOS wheels are CPU/MPS).
set -euo pipefail
PY=${1:?usage: install_torch.sh PYTHON}
TORCH_SPEC=${TORCH_SPEC:-torch>=2.2}

if "$PY" -c "import torch" 2>/dev/null; then
    echo "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 || [ "$(uname -s)" = "Darwin" ]; then
    exec "$PY" -m pip install "$TORCH_SPEC"
fi
# CPU-only Linux: a CPU wheel on local disk first (no download), e.g. torch==2.13.0+cpu.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if "$PY" -m pip download --quiet --no-index --no-deps --only-binary=:all: -d "$tmp" "$TORCH_SPEC" 2>/dev/null; then
    exec "$PY" -m pip install "$tmp"/torch-*.whl
fi
if "$PY" -m pip install --index-url https://download.pytorch.org/whl/cpu "$TORCH_SPEC"; then
    exit 0
fi
echo "warning: no CPU-only torch wheel found; installing the default build" >&2
exec "$PY" -m pip install "$TORCH_SPEC"
