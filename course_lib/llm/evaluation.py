"""Held-out evaluation of a policy LM: the same prompts, the same seed, for every model compared.

Lessons 11-15 measure each fine-tuned model the same way: sample ``per_prompt`` responses to every
held-out prompt at temperature 1, then record the gold score (the simulated annotator), optionally a
proxy score (a reward model), the KL to a reference model, the response length and whether it ended
with EOS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from course_lib.llm.ppo import distinct_n
from course_lib.llm.rollout import sample_responses, sequence_kl, shared_prompt_response_logprobs

ScoreFn = Callable[[list[str], list[str]], Sequence[float]]


@dataclass
class HeldOutEvaluation:
    """One model's held-out samples; n = len(prompts) * per_prompt responses, prompt by prompt."""

    prompts: list[str]
    """(n,) the formatted prompt of each response."""
    texts: list[str]
    """(n,) the responses, decoded without special tokens."""
    gold: np.ndarray
    """(n,) the gold scorer's score of each response."""
    proxy: np.ndarray | None
    """(n,) the proxy scorer's score (e.g. the reward model's), or None when none was given."""
    kl: np.ndarray
    """(n,) k1 summed over each response: log pi(y_t) - log pi_ref(y_t), in nats."""
    lengths: np.ndarray
    """(n,) response tokens, the EOS included."""
    ended: np.ndarray
    """(n,) bool: the response ended with EOS within the token limit."""

    def summary(self) -> dict[str, float]:
        """Means (and standard errors of the mean for gold, proxy and KL) over the n responses."""

        def se(x: np.ndarray) -> float:
            return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0

        out = {"gold": float(self.gold.mean()), "gold_se": se(self.gold), "kl": float(self.kl.mean()),
               "kl_se": se(self.kl), "length": float(self.lengths.mean()), "eos_rate": float(self.ended.mean()),
               "distinct_2": distinct_n(self.texts, 2)}
        if self.proxy is not None:
            out.update(proxy=float(self.proxy.mean()), proxy_se=se(self.proxy))
        return out


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equal-length score arrays: the Pearson correlation of their ranks,
    tied values sharing their mean rank; nan when either array is constant (no order to compare)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a, b: expected two 1-d arrays of one length, got shapes {a.shape} and {b.shape}")
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")

    def ranks(x: np.ndarray) -> np.ndarray:
        r = np.empty(len(x))
        r[np.argsort(x, kind="stable")] = np.arange(len(x))
        for value in np.unique(x):
            r[x == value] = r[x == value].mean()
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def _scores(name: str, fn: ScoreFn, prompts: list[str], texts: list[str]) -> np.ndarray:
    scores = np.asarray([float(s) for s in fn(prompts, texts)])
    if scores.shape != (len(texts),):
        raise ValueError(f"{name}: expected one score per response, got {scores.size} for {len(texts)}")
    return scores


@torch.no_grad()
def evaluate_policy(lm, tokenizer, prompts: Sequence[str], gold_fn: ScoreFn, reference, per_prompt: int = 4,
                    max_new_tokens: int = 24, proxy_fn: ScoreFn | None = None, seed: int = 2024,
                    chunk: int = 64) -> HeldOutEvaluation:
    """Sample ``per_prompt`` responses per prompt at temperature 1 and measure them.

    Args:
        lm: the causal LM to evaluate (a :class:`~course_lib.llm.rollout.PolicyWithValue`'s ``.lm``).
        tokenizer: its tokenizer, padding on the left.
        prompts: formatted held-out prompts.
        gold_fn, proxy_fn: ``fn(prompts, responses)`` -> one float per response.
        reference: the LM the KL is measured against (the starting model).
        per_prompt: responses per prompt. max_new_tokens: the response limit R.
        seed: seeds the sampling, so every model sees the same random numbers.
        chunk: responses sampled per batch; 64 was the fastest on a 2-core CPU (``bench/bench_sampling.py``, part c).
    """
    if not isinstance(per_prompt, int) or isinstance(per_prompt, bool) or per_prompt < 1:
        raise ValueError(f"per_prompt: expected an int >= 1, got {per_prompt!r}")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")
    repeated = [p for p in prompts for _ in range(per_prompt)]
    was_training = lm.training
    lm.eval()
    torch.manual_seed(seed)
    texts, kl, lengths, ended = [], [], [], []
    for i in range(0, len(repeated), chunk):
        samples = sample_responses(lm, tokenizer, repeated[i:i + chunk], max_new_tokens, temperature=1.0)
        mask = samples.response_mask  # (b, R): the response's tokens up to and including EOS
        logp = samples.logp  # (b, R) log pi(y_t | x, y_<t), recorded while sampling (equal to a re-score, tested)
        ref_logp = shared_prompt_response_logprobs(reference, samples)  # (b, R) under the reference, prompts once
        kl.append(sequence_kl(logp - ref_logp, mask).cpu())  # (b,)
        lengths.append(mask.sum(dim=1).cpu())  # (b,)
        ended.append(samples.ended(tokenizer.eos_token_id).cpu())  # (b,)
        texts += samples.texts
    lm.train(was_training)
    gold = _scores("gold_fn", gold_fn, repeated, texts)
    proxy = _scores("proxy_fn", proxy_fn, repeated, texts) if proxy_fn is not None else None
    return HeldOutEvaluation(repeated, texts, gold, proxy, torch.cat(kl).numpy(), torch.cat(lengths).numpy(),
                             torch.cat(ended).numpy())


def evaluation_table(results: dict[str, HeldOutEvaluation]) -> str:
    """One row per evaluated model: gold (± standard error), proxy, KL, length, EOS rate, distinct-2."""
    for name, ev in results.items():
        if not isinstance(ev, HeldOutEvaluation):
            raise TypeError(f"results: expected a dict of name -> HeldOutEvaluation, got {type(ev).__name__} "
                            f"for {name!r}")
    width = max([5, *(len(n) for n in results)]) + 2
    lines = [f"{'model':<{width}}{'gold':>16}{'proxy':>16}{'KL (nats)':>16}{'tokens':>8}{'EOS':>6}{'distinct-2':>12}"]
    for name, ev in results.items():
        s = ev.summary()
        proxy = f"{s['proxy']:+.3f} ± {s['proxy_se']:.3f}" if "proxy" in s else "-"
        lines.append(f"{name:<{width}}{s['gold']:>+8.3f} ± {s['gold_se']:.3f}{proxy:>16}"
                     f"{s['kl']:>8.2f} ± {s['kl_se']:<5.2f}{s['length']:>8.1f}{s['eos_rate']:>6.2f}"
                     f"{s['distinct_2']:>12.3f}")
    return "\n".join(lines)
