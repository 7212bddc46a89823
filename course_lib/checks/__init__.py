"""Exercise checks: compare a student's function with the library's reference.

Each check runs the student's function on seeded cases, compares with the
reference in this (trusted) process, and prints a short verdict: all passed,
or the first mismatch with its input, the expected and the got value, and a
hint. It never shows the reference's code.

A check cell in an exercise notebook is one line::

    check_top_k_next_tokens(top_k_next_tokens)

Hints come in three tiers: the nudge in the exercise's docstring, a stronger
one printed by ``hint("top_k_next_tokens", 2)`` (each lesson module's
``HINTS``), and the failing case's own hint in the check's message. None of
them contains the answer's code (``tests/test_hint_leaks.py`` measures it).

Outcomes: passing prints a verdict; a wrong answer raises :class:`CheckFailed`
(so "Run All" stops at the first exercise that needs work); an unfinished
stub's ``NotImplementedError`` propagates after a friendly line. When the
environment variable ``COURSE_KIT_CHECK_LOG`` names a file, each outcome is
also appended to it as a JSON line (``course-kit check`` reads it).

The checks live in one module per lesson (``lesson00``, ``lesson01``, ...)
and are imported on first use, so the torch-free Part I exercises never
import torch through lesson 0's checks.
"""

from __future__ import annotations

import importlib

from course_lib.checks.core import Case, CheckFailed, CheckResult, compare, hint, run_check

__all__ = ["Case", "CheckFailed", "CheckResult", "compare", "hint", "run_check", "LESSON_OF"]


# The registry: exercise -> lesson, as each lesson module's ``EXERCISES`` defines them (a test checks it stays
# equal). The grader and ``from course_lib.checks import check_x`` both read it.
LESSON_OF: dict[str, str] = {
    # lesson 00
    "top_k_next_tokens": "00",
    # lesson 01
    "robot_story": "01",
    "cat_statement": "01",
    "rl_loop_order": "01",
    "concept_definitions": "01",
    "discounted_return": "01",
    "run_episode": "01",
    # lesson 02
    "bandit_update": "02",
    "epsilon_greedy_action": "02",
    "ucb_scores": "02",
    # lesson 03
    "bellman_backup": "03",
    "run_value_iteration": "03",
    # lesson 04
    "q_learning_target": "04",
    "sarsa_target": "04",
    "expected_sarsa_target": "04",
    "double_q_target": "04",
    "the_bug": "04",
    "q_learning_step": "04",
    "q_learning_agent": "04",
    "cliff_prediction": "04",
    # lesson 05
    "dyna_planning": "05",
    "dyna_q_agent": "05",
    # lesson 06
    "reward_to_go": "06",
    "reinforce_loss": "06",
    "gradient_variance": "06",
    "reinforce_loss_grad": "06",
    "reinforce_weights_bug": "06",
    "reinforce_weights": "06",
    "train_reinforce": "06",
    # lesson 07
    "gae_advantages": "07",
    "ppo_clip_loss": "07",
    "value_loss_fn": "07",
    "ppo_lr_prediction": "07",
    # lesson 08
    "sequence_logprob": "08",
    "temperature_entropy": "08",
    "per_token_rewards": "08",
    "credit_assignment": "08",
    "entropy_prediction": "08",
    "reward_bug": "08",
    # lesson 09
    "sft_loss": "09",
    "kl_to_reference": "09",
    "pg_loss": "09",
    "pg_kl_step": "09",
    # lesson 10
    "bradley_terry_loss_fn": "10",
    "last_token_positions": "10",
    "calibration_bins": "10",
    "reward_rows": "10",
    "eos_bug": "10",
    # lesson 11
    "whiten": "11",
    "kl_estimates": "11",
    "adaptive_kl_coef": "11",
    "kl_anchor_bug": "11",
    "kl_penalty_rewards": "11",
    "update_bug": "11",
    "rlhf_policy_loss": "11",
    "rlhf_ppo_step": "11",
    "beta_prediction": "11",
    # lesson 12
    "sequence_logps": "12",
    "dpo_loss_fn": "12",
    "dpo_gradient_weight": "12",
    "dpo_bug": "12",
    "dpo_margins": "12",
    "dpo_step": "12",
    # lesson 13
    "parse_verdict": "13",
    "judge_margin": "13",
    "agreement_rate": "13",
    "position_bug": "13",
    "consistent_labels": "13",
    # lesson 14
    "group_relative_advantages": "14",
    "parse_answer": "14",
    "grpo_loss": "14",
    "grpo_group_update": "14",
    "second_epoch_prediction": "14",
    # lesson 15
    "win_rate": "15",
    "ensemble_reward": "15",
    "early_stop_index": "15",
    "selection_bug": "15",
    "honest_report": "15",
    # lesson 16
    "LoRALinear": "16",
    "lora_param_count": "16",
    "adam_memory_bytes": "16",
    "bf16_bug": "16",
    "mixed_precision_sgd_step": "16",
}


def __getattr__(name: str):
    """``from course_lib.checks import check_x`` imports only the lesson module that defines exercise ``x``."""
    if name.startswith("check_") and name[len("check_"):] in LESSON_OF:
        module = importlib.import_module(f"{__name__}.lesson{LESSON_OF[name[len('check_'):]]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
