"""Mixed precision on the CPU (bf16 autocast works there): fp32 master weights under bf16 autocast move like fp32,
pure bf16 weights lose most updates, the loss falls; and every `gpu` preset runs one step on the tiny model.

No GPU runs the test suite, so the `gpu` presets' code path (bf16 autocast, ``trainable``, learning rate, epochs,
KL terms) is executed here on the CPU; only the sizes are shrunk to one step on tiny data.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from course_lib.data.preferences import PreferencePair
from course_lib.llm.dpo import DPO_PRESETS, DPOConfig, train_dpo
from course_lib.llm.grpo import GRPO_PRESETS, GRPOConfig, grpo
from course_lib.llm.models import tiny_model
from course_lib.llm.ppo import RLHF_PRESETS, RLHFConfig, rlhf_ppo
from course_lib.llm.reward_model import REWARD_PRESETS, RewardConfig, RewardModel, train_reward_model
from course_lib.llm.rollout import PolicyWithValue
from course_lib.llm.sft import SFT_PRESETS, SFTConfig, sft, sft_loss
from course_lib.utils.device import MIXED_PRECISIONS, autocast, pick_dtype
from conftest import ROOT, env_with, lowercase_share

WORDS = [" cheese", " robot", " maze", " wall", " cat", " door", " lamp", " tree"]  # one token each


def word_stories(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """n prompts "Story i:" and n demonstrations of 6 words drawn uniformly from WORDS."""
    rng = np.random.default_rng(seed)
    return [f"Story {i}:" for i in range(n)], ["".join(rng.choice(WORDS, size=6)) for _ in range(n)]


def layer_change(before: dict, model) -> tuple[float, float]:
    """``(||W1 - W0|| / ||W0||, share of elements changed)`` over the decoder layers' weight matrices."""
    num = den = 0.0
    moved = total = 0
    for name, p in model.named_parameters():
        if ".layers." not in name or p.dim() != 2:
            continue
        w0, w1 = before[name].float(), p.detach().float()
        num += float((w1 - w0).pow(2).sum())
        den += float(w0.pow(2).sum())
        moved += int((w1 != w0).sum())
        total += w0.numel()
    return (num / den) ** 0.5, moved / total


# ---------------------------------------------------------------- fp32 master weights vs pure bf16


@pytest.fixture(scope="module")
def ten_steps(tokenizer):
    """10 AdamW steps of SFT at lr 1e-5 from the same start on the same data, three ways: ``{way: layer_change}``.
    (On SmolLM2 the same run changed 11.9-12.2% of the weights with fp32 master weights, 1.8-2.0% in pure bf16.)"""
    prompts, demos = word_stories(8)
    out = {}
    for name, mixed_precision, dtype in [("fp32", "no", torch.float32), ("bf16 autocast", "bf16", torch.float32),
                                         ("pure bf16", "no", torch.bfloat16)]:
        model, tok = tiny_model(seed=0, tokenizer=tokenizer)
        model.to(dtype)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        sft(model, tok, prompts, demos, SFTConfig(epochs=10, batch_size=8, learning_rate=1e-5,
                                                  mixed_precision=mixed_precision), progress=False)
        out[name] = layer_change(before, model)
        assert all(p.dtype == dtype for p in model.parameters())  # master weights stay what they were
    print({k: f"relative change {r:.2e}, share changed {s:.3f}" for k, (r, s) in out.items()})
    return out


def test_bf16_autocast_over_fp32_weights_moves_the_weights_like_fp32(ten_steps):
    fp32, amp = ten_steps["fp32"], ten_steps["bf16 autocast"]
    assert amp[0] >= 0.5 * fp32[0], ten_steps  # measured: 4.79e-3 vs 4.79e-3
    assert amp[1] > 0.99 and fp32[1] > 0.99, ten_steps  # every weight moved


def test_pure_bf16_weights_lose_most_updates(ten_steps):
    # the failure mode of the old gpu path: an update of about lr = 1e-5 rounds away on any weight above ~0.005
    fp32, pure = ten_steps["fp32"], ten_steps["pure bf16"]
    assert pure[1] < 0.5, ten_steps  # measured: 14% of the weights changed at all (fp32: 100%)
    assert pure[0] < fp32[0], ten_steps


def test_the_loss_falls_under_bf16_autocast(tokenizer):
    model, tok = tiny_model(seed=1, tokenizer=tokenizer)
    prompts, demos = word_stories(16)
    targets = [d + tok.eos_token for d in demos]
    with torch.no_grad():
        before, _ = sft_loss(model, tok, prompts, targets)
    logger = sft(model, tok, prompts, demos, SFTConfig(epochs=8, batch_size=16, learning_rate=3e-2,
                                                       mixed_precision="bf16"), progress=False)
    _, losses = logger.as_arrays("sft/loss")
    with torch.no_grad():
        after, _ = sft_loss(model, tok, prompts, targets)
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 2, losses
    assert before.item() > 9 and after.item() < before.item() - 3  # ln(49k) = 10.8 at the start
    assert all(p.dtype == torch.float32 for p in model.parameters())


# ---------------------------------------------------------------- the one mechanism


def test_autocast_computes_matmuls_in_bf16_and_leaves_the_weights_fp32():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast("cpu", "bf16"):
        y = layer(x)
    assert y.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    with autocast("cpu", "no"):
        assert layer(x).dtype == torch.float32
    assert isinstance(autocast("cpu", "no"), contextlib.nullcontext)
    with pytest.raises(ValueError, match=r"mixed_precision: expected one of \('no', 'bf16'\), got 'fp16'"):
        autocast("cpu", "fp16")


def test_without_native_bf16_autocast_warns_and_computes_in_fp32(monkeypatch):
    import course_lib.utils.device as device

    monkeypatch.setattr(device, "bf16_supported", lambda dev: False)  # an older GPU, or MPS
    with pytest.warns(UserWarning, match="mixed_precision: 'bf16' is not available on cpu; computing in float32"):
        context = device.autocast("cpu", "bf16")
    with context:
        assert torch.nn.Linear(4, 3)(torch.randn(2, 4)).dtype == torch.float32


def test_weights_load_in_float32_everywhere():
    assert pick_dtype() == torch.float32 and pick_dtype("cpu") == torch.float32
    assert pick_dtype("cpu", "bfloat16") == torch.bfloat16  # explicit: inference only


CONFIGS = {"sft": (SFTConfig, SFT_PRESETS), "reward": (RewardConfig, REWARD_PRESETS), "dpo": (DPOConfig, DPO_PRESETS),
           "rlhf": (RLHFConfig, RLHF_PRESETS), "grpo": (GRPOConfig, GRPO_PRESETS)}


@pytest.mark.parametrize("algorithm", sorted(CONFIGS))
def test_only_the_gpu_presets_compute_in_bf16_and_bad_values_are_named(algorithm):
    config_class, presets = CONFIGS[algorithm]
    assert {name: p.mixed_precision for name, p in presets.items()} == {"ci": "no", "cpu": "no", "gpu": "bf16"}
    assert config_class().mixed_precision == "no" and set(MIXED_PRECISIONS) == {"no", "bf16"}
    with pytest.raises(ValueError, match=r"mixed_precision: expected one of \('no', 'bf16'\), got 'fp16'"):
        config_class(mixed_precision="fp16")


# ---------------------------------------------------------------- every gpu preset, one step on the tiny model

PROMPTS = ["The robot", "The cat", "Cheese is", "A maze", "The door", "A lamp", "The tree", "A wall"]
PAIRS = [PreferencePair(f"Story {i}:", " cheese" * (i + 2), " wall" * (i + 2)) for i in range(4)]

# Only sizes change: one step on tiny data. mixed_precision, trainable ("all" in every gpu preset, so the tiny
# model's 2 layers need no adapting), learning rate, epochs, minibatches and KL terms stay the preset's.
ONE_STEP = {
    "sft": replace(SFT_PRESETS["gpu"], epochs=1),  # 4 stories < batch_size 16: one step
    "reward": replace(REWARD_PRESETS["gpu"], epochs=1),  # 4 pairs < batch_size 16: one step
    "dpo": replace(DPO_PRESETS["gpu"], epochs=1),  # 4 pairs < batch_size 16: one step
    # 32 prompts x 48 tokens would make (32, 48, 49152) logits; 8 x 8 keeps its 4 minibatches and 4 epochs
    "rlhf": replace(RLHF_PRESETS["gpu"], steps=1, batch_size=8, max_new_tokens=8),
    # 16 x 16 x 48 would make (256, 48, 49152) logits; 2 x 4 x 8 keeps its 2 epochs and KL reference
    "grpo": replace(GRPO_PRESETS["gpu"], steps=1, prompts_per_step=2, group_size=4, max_new_tokens=8),
}


def run_one_step(algorithm: str, config, lm, tok):
    """Run ``algorithm``'s loop with ``config`` on ``lm``; returns the module whose parameters it trains."""
    if algorithm == "sft":
        prompts, demos = word_stories(4)
        sft(lm, tok, prompts, demos, config, progress=False)
        return lm
    if algorithm == "reward":
        rm = RewardModel(lm)
        train_reward_model(rm, tok, PAIRS, None, config, progress=False)
        return rm
    if algorithm == "dpo":
        train_dpo(lm, tok, PAIRS, config, progress=False)
        return lm
    if algorithm == "rlhf":
        policy = PolicyWithValue(lm)
        rlhf_ppo(policy, tok, PROMPTS, lowercase_share, config, progress=False)
        return policy
    grpo(lm, tok, PROMPTS, lowercase_share, config, progress=False)
    return lm


@pytest.mark.parametrize("algorithm", sorted(ONE_STEP))
def test_every_gpu_preset_runs_one_step_on_the_tiny_model_in_bf16(algorithm, tokenizer):
    config = ONE_STEP[algorithm]
    assert config.mixed_precision == "bf16" and config.trainable == "all"
    lm, tok = tiny_model(seed=0, tokenizer=tokenizer)
    seen = set()  # the dtypes the top layer's MLP computed in: proves the preset ran under bf16 autocast
    hook = lm.model.layers[-1].mlp.down_proj.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    trained = run_one_step(algorithm, config, lm, tok)
    hook.remove()
    assert seen == {torch.bfloat16}
    params = dict(trained.named_parameters())
    assert all(p.requires_grad for p in params.values())  # trainable="all"
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in params.values())  # fp32 master weights
    relative, share = layer_change(before, lm)
    # one Adam step moves every weight with a gradient by about lr (1e-5 to 1e-6): kept in fp32, lost in bf16
    assert share > 0.9 and relative > 0, (relative, share)


# ---------------------------------------------------------------- the GPU smoke script, tested on the CPU


def run_smoke(*args: str) -> subprocess.CompletedProcess:
    env = env_with(OMP_NUM_THREADS="1", COURSE_DEVICE="cpu")
    return subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_smoke.py"), *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script measures the GPU")
def test_the_gpu_smoke_script_without_cuda_says_so_and_exits_zero():
    out = run_smoke()
    assert out.returncode == 0 and out.stdout.strip().splitlines() == [
        "gpu-smoke: no CUDA device here, nothing measured (--allow-cpu runs the same on the CPU)"]
    helped = run_smoke("--help")
    assert helped.returncode == 0 and "--allow-cpu" in helped.stdout and "--tiny" in helped.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script runs on the GPU")
def test_the_gpu_smoke_script_runs_every_loop_on_the_tiny_model():
    out = run_smoke("--allow-cpu", "--tiny", "--steps", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "mixed_precision=bf16" in lines[0] and lines[1].split() == ["lesson", "loop", "steps", "seconds", "s/step",
                                                                       "peak", "MiB", "moved"]
    rows = {int(line.split()[0]): line for line in lines[2:-1]}
    assert sorted(rows) == [10, 11, 12, 13, 14], out.stdout
    for lesson, line in rows.items():
        steps, seconds, per_step, peak, moved = line.split()[-5:]
        assert int(steps) == 2 and float(seconds) > 0 and peak == "-", line  # no CUDA memory on the CPU
        assert float(moved.rstrip("%")) > 90, line
    assert lines[-1].startswith("total ") and "FAILED" not in out.stdout
