#!/usr/bin/env bash
# Set up hybridvision on a fresh machine: .venv with the pinned CPU torch (no CUDA wheels; torchvision pinned, for
# detection and timm), the project and its tools, Debian's Fashion-MNIST data set and WordNet.
# Safe to run again: it only checks then.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv 2>/dev/null || test -x .venv/bin/python
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
.venv/bin/python -c "import torch" 2>/dev/null || pip_install torch==2.13.0
pip_install -c constraints.txt -e '.[dev]'
.venv/bin/python -c "import hybridvision, torch; assert torch.__version__ == '2.13.0+cpu', torch.__version__"
# The `det` extra, timm and segmentation-models-pytorch bring torchvision; the constraints keep it from
# bringing a CUDA torch along. Fail loudly if any CUDA runtime package slipped in anyway.
if .venv/bin/python -m pip list 2>/dev/null | grep -qi '^nvidia'; then
  echo "error: CUDA packages (nvidia-*) were installed; reinstall with -c constraints.txt" >&2
  exit 1
fi

apt_install() {  # PACKAGE FILE WHY: Debian's PACKAGE, unless its FILE is there already
  [ -f "$2" ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$1" >/dev/null; } \
    || echo "warning: could not install Debian's $1; $3" >&2
}
apt_install dataset-fashion-mnist /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
  "training needs it (or --data DIR)"
apt_install wordnet-base /usr/share/wordnet/data.noun \
  "scripts/t2i_prompt_sets.py needs it to remake the text-to-image prompt sets (their test skips)"
echo "hybridvision is set up in .venv"
