"""Evaluation of a policy LM on prompts it never trained on, and the statistics every LLM lesson reports.

Lessons 9-16 measure each fine-tuned model the same way (:func:`evaluate_policy`): sample
``per_prompt`` responses to every evaluation prompt at temperature 1 with one fixed seed, then record
the gold score (the simulated annotator), optionally a proxy score (a reward model), the KL to a
reference model, the response length and whether it ended with EOS.

Replies are not independent: the replies to one topic share it (and its difficulty), and two models
evaluated with the same seed on the same prompts share both. So every interval here resamples
**topics** (all replies of a topic together), and where several training seeds were run, **seeds**
as well, and a difference between two models is computed on the same resampled topics for both
(a paired bootstrap; Efron & Tibshirani 1993, ch. 6 and 14 on resampling the independent units).
:func:`paired_bootstrap` returns an :class:`Interval`; a claim whose 95% interval includes 0 is
"not shown".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from course_lib.data.prompts import topic_of
from course_lib.llm.rollout import sample_responses, sequence_kl, shared_prompt_response_logprobs
from course_lib.utils.validation import check_float, check_int

ScoreFn = Callable[[list[str], list[str]], Sequence[float]]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the texts' whitespace words (Li et al. 2016); 0 when there are none."""
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


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

    @property
    def topics(self) -> list[str]:
        """(n,) the topic of each response's prompt (:func:`course_lib.data.prompts.topic_of`): the unit that
        :func:`paired_bootstrap` and the standard errors resample."""
        return [topic_of(p) for p in self.prompts]

    def summary(self) -> dict[str, float]:
        """Means over the n responses, and for gold, proxy and KL the standard error of the mean with the
        replies of one topic counted together (:func:`clustered_se`)."""
        topics = self.topics

        def se(x: np.ndarray) -> float:
            return clustered_se(x, topics)

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


def clustered_se(values, groups) -> float:
    """The standard error of the mean of ``values`` when the values of one group (a topic) may be correlated.

    The cluster-robust form: with G groups, mean m and n values,
    ``SE = sqrt(G / (G - 1) * sum_g (sum_{i in g} (x_i - m))^2) / n``. With one value per group it is the
    usual ``std(ddof=1) / sqrt(n)``; replies that agree within a topic make it larger, as they should.
    0.0 for fewer than two groups.
    """
    x = np.asarray(values, dtype=float)
    codes = _group_codes(groups, len(x), "groups")
    G = int(codes.max()) + 1 if len(x) else 0
    if G < 2:
        return 0.0
    resid = np.bincount(codes, weights=x - x.mean(), minlength=G)
    return float(math.sqrt(G / (G - 1) * np.sum(resid ** 2)) / len(x))


def _group_codes(groups, n: int, name: str) -> np.ndarray:
    groups = list(groups)
    if len(groups) != n:
        raise ValueError(f"{name}: expected one group label per value ({n}), got {len(groups)}")
    _, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    return codes.reshape(-1)


@dataclass(frozen=True)
class Interval:
    """An estimate with a bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    level: float
    """The interval's coverage, e.g. 0.95."""
    groups: int
    """How many groups (topics) were resampled."""
    seeds: tuple[int, ...]
    """How many seeds (rows) each side had, e.g. (3, 1) for three trained models against one start."""

    @property
    def shown(self) -> bool:
        """True when the interval excludes 0: the only case in which a lesson calls the effect shown."""
        return self.low > 0 or self.high < 0

    def verdict(self) -> str:
        """``"shown"`` or ``"not shown"`` (the interval includes 0)."""
        return "shown" if self.shown else "not shown"

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_bootstrap(a, b=None, groups=None, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> Interval:
    """A bootstrap interval for mean(a) - mean(b) (or for mean(a) when ``b`` is None), paired by prompt.

    Args:
        a: (S_a, n) or (n,): one score per response for each of S_a training seeds, the n responses in the
            same order for every row (same prompts, same sampling seed: :func:`evaluate_policy` does that).
        b: None, or (S_b, n) / (n,) scores of the responses to the same n prompts, e.g. the starting model
            (S_b = 1) or another method's seeds.
        groups: (n,) the group of each response (its topic, :attr:`HeldOutEvaluation.topics`); None: every
            response is its own group.
        level: the coverage, in (0, 1). n_boot: resamples. seed: the resampling's generator.

    Each resample draws G topics with replacement (every response of a drawn topic comes along, for both
    sides at once, which is the pairing), and S_a rows of ``a`` and S_b rows of ``b`` with replacement;
    the statistic is the mean over the drawn rows of each side's mean over the drawn responses. The
    interval is the percentile interval of the resampled statistics; the estimate is the statistic on the
    data as they are. With S = 1 the seed is not resampled: the interval then says nothing about another
    training seed, and a lesson must say so.
    """
    check_float("level", level, "(0, 1)")
    check_int("n_boot", n_boot, 100)
    sides = [np.atleast_2d(np.asarray(x, dtype=float)) for x in ((a,) if b is None else (a, b))]
    n = sides[0].shape[1]
    for name, x in zip("ab", sides):
        if x.ndim != 2 or x.shape[1] != n or x.shape[0] < 1 or n < 1:
            raise ValueError(f"{name}: expected shape (seeds, {n}) or ({n},), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{name}: expected finite scores, got {int((~np.isfinite(x)).sum())} non-finite")
    codes = np.arange(n) if groups is None else _group_codes(groups, n, "groups")
    G = int(codes.max()) + 1
    counts = np.bincount(codes, minlength=G).astype(float)  # (G,) responses per group
    rng = np.random.default_rng(seed)
    topic_weights = rng.multinomial(G, np.full(G, 1 / G), size=n_boot).astype(float)  # (n_boot, G)
    denominator = topic_weights @ counts  # (n_boot,) responses drawn
    stats = np.zeros(n_boot)
    estimate = 0.0
    for sign, x in zip((1.0, -1.0), sides):
        S = x.shape[0]
        sums = np.stack([np.bincount(codes, weights=row, minlength=G) for row in x])  # (S, G) per-group sums
        per_seed = (topic_weights @ sums.T) / denominator[:, None]  # (n_boot, S): each row's mean on the draw
        seed_weights = rng.multinomial(S, np.full(S, 1 / S), size=n_boot) if S > 1 else np.ones((n_boot, 1))
        stats += sign * (per_seed * seed_weights).sum(axis=1) / S
        estimate += sign * float(x.mean())
    tail = (1 - level) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high), level, G, tuple(x.shape[0] for x in sides))


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
    check_int("per_prompt", per_prompt, 1)
    check_int("chunk", chunk, 1)
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
    """One row per evaluated model: gold, proxy and KL (± standard errors by topic, :func:`clustered_se`), length,
    EOS rate, distinct-2."""
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
