#!/usr/bin/env bash
# Create the environment of bench/bench_rlhf_ppo.py: TRL 1.12.0, the last release whose
# `trl.experimental.ppo` has the PPO trainer, next to course_lib itself, so that both sides
# run in one process. It is a separate virtual environment because the project's .venv
# holds TRL 1.13.0 (for bench/bench_reward_model.py), which no longer has PPOTrainer.
#   bash bench/setup_trl_ppo_env.sh [VENV]        (default bench/.venv-trl-ppo)
# The other pins match the project's .venv, so the two benchmarks run on the same
# torch and transformers. Re-running it on an existing environment only checks the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-bench/.venv-trl-ppo}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
# torch 2.13.0: a CPU build on a machine without an NVIDIA GPU (never the multi-GB CUDA one there)
TORCH_SPEC="torch==2.13.0" bash tools/install_torch.sh "$PY"
"$PY" -m pip install --quiet \
    "trl==1.12.0" "transformers==5.24.0" "accelerate==1.15.0" "datasets==5.2.0" \
    "numpy==2.4.6" "safetensors==0.8.0" "tokenizers==0.23.3" "filelock==4.3.1" "tqdm==4.70.1" "peft==0.21.2"
# course_lib itself; its other dependencies (Jupyter, gymnasium, plotting) are not needed to benchmark
"$PY" -m pip install --quiet --no-deps -e .
"$PY" -c "import torch, transformers, trl; from trl.experimental.ppo import PPOConfig, PPOTrainer; \
print(f'{\"$VENV\"}: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}')"
