"""What the benchmarks share: their command line, the preference pairs, the trainers' batch order, a step clock.

Imported by the scripts beside it as ``from _common import ...`` (running ``python bench/x.py`` puts
``bench/`` on the import path); not part of ``course_lib``.
"""

from __future__ import annotations

import argparse
import time

import torch

from course_lib.data.demonstrations import DEMONSTRATIONS
from course_lib.data.preferences import PreferencePair
from course_lib.data.prompts import TEMPLATES, TRAIN_TOPICS, VALIDATION_TOPICS
from course_lib.llm.generation import chat_prompt

TOPICS = TRAIN_TOPICS[:32] + VALIDATION_TOPICS[:8]  # the 40 topics of the course before its 3-way split: same pairs


def parse_bench_args(description: str, steps: int, warmup: int) -> argparse.Namespace:
    """The options of the training-step benchmarks (--steps, --warmup, --threads); sets torch's thread count."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps, help=f"timed steps per library (default {steps})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"steps run first and discarded (default {warmup})")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for all (default: torch's own; 1 on a busy CPU)")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


def build_pairs(tokenizer, n: int) -> list[PreferencePair]:
    """n pairs: topic k % 32 in phrasing (k // 32) % 2; chosen its demonstration, rejected the next topic's."""
    replies = [reply for _, reply in DEMONSTRATIONS]
    pairs = []
    for k in range(n):
        i, j = k % len(TOPICS), (k // len(TOPICS)) % len(TEMPLATES)
        prompt = chat_prompt(tokenizer, TEMPLATES[j].format(TOPICS[i]))
        pairs.append(PreferencePair(prompt, replies[i % len(replies)] + tokenizer.eos_token,
                                    replies[(i + 1) % len(replies)] + tokenizer.eos_token))
    return pairs


def quiet_hf_progress() -> None:
    """Turn off the progress bars of datasets and transformers, so the benchmarks print only their results."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def course_lib_order(n: int, seed: int = 0) -> list[int]:
    """The order in which ``train_reward_model`` and ``train_dpo`` with ``seed`` visit n pairs in their first epoch."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


class ForwardClock:
    """A forward pre-hook noting when each step's first forward starts, its padded shapes and its real tokens.

    ``calls_per_step``: how many forwards of ``module`` one training step makes (course_lib's body runs
    twice: the distinct prompts, then the responses on their cached keys and values). The real tokens
    counted are those of the positions the call computes (``input_ids``), not of the cached prefix.
    """

    def __init__(self, module, calls_per_step: int = 1):
        self.calls_per_step = calls_per_step
        self.calls = 0
        self.starts: list[float] = []
        self.shapes: list[tuple] = []
        self.tokens: list[int] = []
        self.threads: set[int] = set()
        self.handle = module.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        mask = kwargs["attention_mask"] if "attention_mask" in kwargs else args[1]
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        tokens = int(mask[:, -ids.shape[1]:].sum())
        if self.calls % self.calls_per_step == 0:
            self.starts.append(time.perf_counter())
            self.shapes.append(tuple(ids.shape))
            self.tokens.append(tokens)
        else:
            self.shapes[-1] += tuple(ids.shape)
            self.tokens[-1] += tokens
        self.calls += 1
        self.threads.add(torch.get_num_threads())

    def step_times(self) -> list[float]:
        """Seconds from each step's first forward to the next step's: one per step but the last."""
        self.handle.remove()
        return [b - a for a, b in zip(self.starts, self.starts[1:])]
