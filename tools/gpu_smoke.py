"""GPU smoke test: the core training loops of lessons 10 to 14, a few steps each in the `gpu` presets, timed.

On a machine with CUDA, ``make gpu-smoke`` (or ``python tools/gpu_smoke.py``) loads SmolLM2-135M-Instruct
(float32 master weights) and runs each loop with its `gpu` preset (bf16 autocast, every parameter trained,
the preset's batch shapes and learning rate), only for ``--steps`` steps:

    lesson 10  reward model  train_reward_model on preference pairs labelled by the simulated annotator
    lesson 11  RLHF-PPO      rlhf_ppo rewarded by that reward model
    lesson 12  DPO           train_dpo on the same pairs
    lesson 13  SFT           sft on the course's written demonstrations (lesson 13's SFT on revisions, lesson 9's)
    lesson 14  GRPO          grpo on the one-digit arithmetic questions, rewarded by the answer-checking program

For each it prints the steps run, seconds, seconds per step (the first step includes CUDA's warm-up), the
peak CUDA memory (``torch.cuda.max_memory_allocated``, reset before each loop; the base model waits on the
CPU) and the share of the decoder layers' weights that moved (near 100% with fp32 master weights; a few
percent would mean the updates round away, as they did in pure bf16). It exits 1 when a loop fails or
barely moves its weights.

Without CUDA it prints one line and exits 0, unless ``--allow-cpu``: then the same runs on the CPU;
with ``--tiny`` on the random tiny model and smaller shapes, in seconds (the test suite runs that).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import replace

LOOPS = ("reward", "rlhf", "dpo", "sft", "grpo")
LESSONS = {"reward": (10, "reward model"), "rlhf": (11, "RLHF-PPO"), "dpo": (12, "DPO"), "sft": (13, "SFT"),
           "grpo": (14, "GRPO")}
TINY_SHAPES = {  # --tiny: sizes only (the tiny model's logits are (B, T, 49152) like SmolLM2's, on a CPU)
    "reward": {"batch_size": 4, "max_length": 64}, "rlhf": {"batch_size": 8, "max_new_tokens": 8},
    "dpo": {"batch_size": 4}, "sft": {"batch_size": 4},
    "grpo": {"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 8},
}
GLUM = ["It is boring and I do not like it.", "That sounds awful, honestly.", "No."]
"""Rejected-reply candidates: the simulated annotator prefers the demonstrations' warm replies to these."""
MOVED_AT_LEAST = 0.5
"""A loop whose share of moved layer weights is below this fails the smoke test."""


def lowercase_share(prompts, responses) -> list[float]:
    """GRPO's reward under ``--tiny``: the random tiny model never writes "The answer is <n>.", so with the
    arithmetic reward every group ties at 0 and GRPO has no gradient; the share of lower-case characters varies."""
    return [sum(c.islower() for c in r) / max(len(r), 1) for r in responses]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gpu_smoke.py", description="Run the core loops of lessons 10-14 for a few steps in the gpu presets "
        "(bf16 autocast over float32 weights) and print seconds, steps, peak CUDA memory and whether the weights "
        "moved. Without CUDA: one line, exit 0.")
    parser.add_argument("--steps", type=int, default=3, help="optimiser steps (RLHF, GRPO: PPO/GRPO steps) per loop "
                        "(default 3)")
    parser.add_argument("--allow-cpu", action="store_true", help="without CUDA, run on the CPU instead of exiting")
    parser.add_argument("--tiny", action="store_true", help="the random tiny model and smaller batch shapes "
                        "(seconds on a CPU; for testing this script)")
    parser.add_argument("--only", nargs="+", choices=LOOPS, default=list(LOOPS), metavar="LOOP",
                        help=f"run only these loops, of {', '.join(LOOPS)}")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps: expected an int >= 1, got {args.steps}")
    return args


def layer_weights(module) -> dict:
    """A copy of the decoder layers' weight matrices of ``module`` (what "moved" compares)."""
    return {n: p.detach().clone() for n, p in module.named_parameters() if ".layers." in n and p.dim() == 2}


def moved_share(before: dict, module) -> float:
    """The share of the elements of ``before``'s matrices that differ in ``module`` now."""
    params = dict(module.named_parameters())
    changed = sum(int((params[n].detach().cpu() != w).sum()) for n, w in before.items())
    return changed / max(sum(w.numel() for w in before.values()), 1)


def preference_pairs(tok, n: int):
    """n preference pairs on chat-formatted training prompts: a written demonstration against a glum reply,
    ordered by the simulated annotator (lesson 10's judge); two pairs per prompt, next to each other."""
    from course_lib.data.annotators import SimulatedAnnotator
    from course_lib.data.demonstrations import DEMONSTRATIONS
    from course_lib.llm.generation import chat_prompt

    annotator = SimulatedAnnotator(temperature=0.0)
    prompts, first, second = [], [], []
    for i in range(n):
        message, reply = DEMONSTRATIONS[(i // 2) % len(DEMONSTRATIONS)]
        prompts.append(chat_prompt(tok, message))
        first.append(reply)
        second.append(GLUM[i % len(GLUM)])
    return annotator.label(prompts, first, second)


def run_loop(name: str, base, tok, device, steps: int, tiny: bool, state: dict) -> tuple[int, object]:
    """Run loop ``name`` for ``steps`` steps on a copy of ``base`` moved to ``device``.

    Returns ``(steps run, the trained copy of base)``; ``state`` carries the reward model from lesson 10 to 11.
    """
    from course_lib.llm.dpo import DPO_PRESETS, train_dpo
    from course_lib.llm.grpo import GRPO_PRESETS, grpo
    from course_lib.llm.ppo import RLHF_PRESETS, rlhf_ppo
    from course_lib.llm.reward_model import REWARD_PRESETS, RewardModel, score_responses, train_reward_model
    from course_lib.llm.rollout import PolicyWithValue
    from course_lib.llm.sft import SFT_PRESETS, sft

    presets = {"reward": REWARD_PRESETS, "rlhf": RLHF_PRESETS, "dpo": DPO_PRESETS, "sft": SFT_PRESETS,
               "grpo": GRPO_PRESETS}
    config = replace(presets[name]["gpu"], **(TINY_SHAPES[name] if tiny else {}))
    lm = copy.deepcopy(base).to(device)
    if name == "reward":
        config = replace(config, epochs=1)
        rm = RewardModel(lm)
        logger = train_reward_model(rm, tok, preference_pairs(tok, steps * config.batch_size), None, config,
                                    progress=False)
        state["reward_model"], state["reward_max_length"] = rm, config.max_length
        return len(logger.as_arrays("rm/loss")[0]), lm  # the reward model trains lm's body
    if name == "rlhf":
        from course_lib.data.prompts import TRAIN_PROMPTS
        from course_lib.llm.generation import chat_prompt

        from course_lib.data.annotators import SimulatedAnnotator

        rm, annotator = state.get("reward_model"), SimulatedAnnotator(temperature=0.0)

        def reward_fn(prompts, responses):  # lesson 10's reward model, or the annotator when it did not run (--only)
            if rm is None:
                return annotator.scores(prompts, responses).tolist()
            return score_responses(rm, tok, prompts, responses, max_length=state["reward_max_length"]).tolist()

        rlhf_ppo(PolicyWithValue(lm), tok, [chat_prompt(tok, p) for p in TRAIN_PROMPTS], reward_fn,
                 replace(config, steps=steps), progress=False)
        state.clear()  # the reward model's memory is lesson 11's, not the next loops'
        return steps, lm
    if name == "dpo":
        result = train_dpo(lm, tok, preference_pairs(tok, steps * config.batch_size), replace(config, epochs=1),
                           progress=False)
        return len(result.step_seconds), lm
    if name == "sft":
        from course_lib.data.demonstrations import DEMONSTRATIONS
        from course_lib.llm.generation import chat_prompt

        rows = [DEMONSTRATIONS[i % len(DEMONSTRATIONS)] for i in range(steps * config.batch_size)]
        logger = sft(lm, tok, [chat_prompt(tok, m) for m, _ in rows], [r for _, r in rows], replace(config, epochs=1),
                     progress=False)
        return len(logger.as_arrays("sft/loss")[0]), lm
    from course_lib.data.arithmetic import TRAIN_QUESTIONS, arithmetic_reward
    from course_lib.llm.generation import chat_prompt

    grpo(lm, tok, [chat_prompt(tok, q.text) for q in TRAIN_QUESTIONS], lowercase_share if tiny else arithmetic_reward,
         replace(config, steps=steps), progress=False)
    return steps, lm


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("gpu-smoke: no CUDA device here, nothing measured (--allow-cpu runs the same on the CPU)")
        return 0
    from course_lib.llm.models import load_model, tiny_model

    device = torch.device("cuda" if cuda else "cpu")
    started = time.perf_counter()
    base, tok = tiny_model(seed=0) if args.tiny else load_model(device="cpu")  # float32; copied to device per loop
    where = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"gpu-smoke: {device} ({where}), torch {torch.__version__}, "
          f"{'tiny random model' if args.tiny else 'SmolLM2-135M-Instruct'} in {next(base.parameters()).dtype}, "
          f"gpu presets (mixed_precision=bf16){', tiny shapes' if args.tiny else ''}; "
          f"loaded in {time.perf_counter() - started:.1f} s")
    print(f"{'lesson':<7}{'loop':<14}{'steps':>6}{'seconds':>9}{'s/step':>8}{'peak MiB':>10}{'moved':>8}")
    state: dict = {}
    failed = []
    for name in [n for n in LOOPS if n in args.only]:
        lesson, label = LESSONS[name]
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        before = layer_weights(base)
        t0 = time.perf_counter()
        try:
            steps, trained = run_loop(name, base, tok, device, args.steps, args.tiny, state)
        except Exception as exc:  # a smoke test reports every loop, then fails
            print(f"{lesson:<7}{label:<14}FAILED: {type(exc).__name__}: {exc}")
            failed.append(name)
            continue
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        moved = moved_share(before, trained)
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}" if cuda else "-"
        print(f"{lesson:<7}{label:<14}{steps:>6}{seconds:>9.1f}{seconds / steps:>8.2f}{peak:>10}{moved:>8.1%}")
        if moved < MOVED_AT_LEAST:
            failed.append(name)
        del trained
    print(f"total {time.perf_counter() - started:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
