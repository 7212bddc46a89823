"""Reward over-optimisation and its mitigations (lesson 15).

A learned reward model is a proxy: optimise it hard and the policy finds replies the proxy
scores highly and the "gold" judge does not (Gao, Schulman & Hilton 2023, "Scaling laws for
reward model overoptimization"; Goodhart's law). This module holds the small pieces lesson 15
needs around :func:`course_lib.llm.ppo.rlhf_ppo`, without changing it:

* :func:`win_rate`: how often one model's reply beats another's, ties counted half, with its
  standard error;
* :func:`ensemble_reward`: K reward models' scores, each standardised, combined by mean or min
  (Coste et al. 2024, "Reward model ensembles help mitigate overoptimization");
* :func:`early_stop_index`: the best check of a held-out gold history and where patience runs out;
* :class:`GoldCheck`: a ``gold_fn`` for ``rlhf_ppo`` that also runs a held-out gold check every few
  steps and keeps the trained parameters of the best check (early stopping without a hook in the loop);
* :class:`RewardEnsemble` and :func:`fit_ensemble_heads`: K linear heads on one reward model's body,
  each fitted on a bootstrap resample of the preference pairs: an ensemble for the cost of one model;
* :func:`best_of_n_curve` and :func:`kl_best_of_n`: over-optimisation without training, by choosing the
  proxy's favourite of n samples; :func:`fit_gao`: Gao et al.'s functional forms of gold against distance.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib.llm.reward_model import RewardModel, score_texts
from course_lib.utils.validation import check_int

ScoreFn = Callable[[list[str], list[str]], Sequence[float]]


# ---- win rate ---------------------------------------------------------------------------------


def win_rate(scores_a, scores_b) -> tuple[float, float]:
    """Win rate of A over B on paired replies, ties counted half, and its standard error.

    Args:
        scores_a, scores_b: (n,) the judge's scores of A's and B's reply to the same n prompts (or samples).

    Returns:
        ``(rate, se)``: rate = mean of w_i with w_i = 1 if a_i > b_i, 1/2 if a_i == b_i, 0 otherwise; se = the
        standard error of that mean, std(w, ddof=1) / sqrt(n) (0 when n = 1).
    """
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"scores_a, scores_b: expected two non-empty 1-d arrays of one length, got shapes "
                         f"{a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores_a, scores_b: expected finite scores, got nan or inf")
    wins = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))  # (n,)
    se = float(wins.std(ddof=1) / math.sqrt(len(wins))) if len(wins) > 1 else 0.0
    return float(wins.mean()), se


# ---- ensembles --------------------------------------------------------------------------------


def ensemble_reward(scores, how: str = "mean", mean=None, std=None) -> np.ndarray:
    """Combine K reward models' scores of N replies into one reward per reply.

    Args:
        scores: (N, K) score of reply n by model k.
        how: ``"mean"`` (average of the standardised scores) or ``"min"`` (the most pessimistic member:
            worst-case optimisation, Coste et al. 2024).
        mean, std: (K,) each model's mean and standard deviation on reference replies (e.g. the starting
            policy's); default: the columns' own mean and std (ddof=0) over these N replies.

    Returns:
        (N,) the combined standardised score: combine_k (scores[:, k] - mean[k]) / std[k].
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
        raise ValueError(f"scores: expected an (N, K) array with N, K >= 1, got shape {s.shape}")
    if how not in ("mean", "min"):
        raise ValueError(f"how: expected 'mean' or 'min', got {how!r}")
    mu = s.mean(axis=0) if mean is None else np.asarray(mean, dtype=float)
    sd = s.std(axis=0) if std is None else np.asarray(std, dtype=float)
    if mu.shape != (s.shape[1],) or sd.shape != (s.shape[1],):
        raise ValueError(f"mean, std: expected shape ({s.shape[1]},) each, got {mu.shape} and {sd.shape}")
    if not (sd > 0).all():
        raise ValueError(f"std: expected every model's std > 0 (a constant model cannot be standardised), got {sd}")
    z = (s - mu) / sd  # (N, K)
    return z.mean(axis=1) if how == "mean" else z.min(axis=1)


# ---- early stopping ---------------------------------------------------------------------------


def early_stop_index(history, patience: int) -> int:
    """The check to keep when stopping early on a held-out score (higher is better).

    Walk through ``history`` (one held-out score per check, in order), remembering the best so far (the
    first one on ties); stop once ``patience`` checks in a row have not beaten it. Returns the index of the
    best check seen up to the stop (or up to the end, when patience never runs out).
    """
    h = np.asarray(history, dtype=float)
    if h.ndim != 1 or len(h) == 0:
        raise ValueError(f"history: expected a non-empty 1-d sequence of scores, got shape {h.shape}")
    check_int("patience", patience, 1)
    best, waited = 0, 0
    for i in range(1, len(h)):
        if h[i] > h[best]:
            best, waited = i, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return best


@dataclass
class GoldCheck:
    """A ``gold_fn`` for :func:`~course_lib.llm.ppo.rlhf_ppo` that also checks held-out gold every few steps.

    ``rlhf_ppo`` calls ``gold_fn(prompts, replies)`` once per step, after that step's update, to log
    ``rlhf/gold_score`` on the step's samples. This wrapper returns exactly that, and every ``every``-th
    call it also samples the policy on ``check_prompts`` (``per_prompt`` each, a fixed seed, the global
    random state saved and restored so training's sampling is not disturbed) and scores them with
    ``gold_fn``. When a check beats the best so far, the trained parameters (those with
    ``requires_grad``, e.g. the top layers and the value head) are copied; :meth:`restore` puts the
    best ones back. Call :meth:`check` once before training to record step 0 (before ``rlhf_ppo`` has
    chosen what trains, every parameter requires gradients, so that copy holds the whole policy; call
    :func:`~course_lib.llm.ppo.select_trainable` first to keep it small).

    Args mirror the fields.
    """

    policy: nn.Module
    """The :class:`~course_lib.llm.rollout.PolicyWithValue` being trained."""
    tokenizer: object
    gold_fn: ScoreFn
    """The gold judge, ``gold_fn(prompts, replies)`` -> one float per reply."""
    check_prompts: list[str]
    """Formatted prompts for the check, kept apart from training and from the final evaluation."""
    every: int = 4
    """Check every this many steps, >= 1."""
    per_prompt: int = 1
    """Replies per check prompt, >= 1."""
    max_new_tokens: int = 24
    seed: int = 1234
    """Seeds the check's sampling: every check sees the same random numbers."""
    steps: list[int] = field(default_factory=list)
    """Steps at which a check ran (0: before training)."""
    scores: list[float] = field(default_factory=list)
    """Mean held-out gold score of each check."""
    per_reply: list[np.ndarray] = field(default_factory=list)
    """Each check's gold score of every reply, (len(check_prompts) * per_prompt,) in prompt order: paired across
    checks (the same prompts and random numbers), so a difference between two checks has a paired standard error."""
    best_state: dict | None = None
    keep_all: bool = False
    """Also keep a copy of the trained parameters at every check (``states``), not only the best."""
    states: dict = field(default_factory=dict)
    """step -> trained parameters at that check, when ``keep_all``."""
    calls: int = 0

    def __post_init__(self):
        for name in ("every", "per_prompt", "max_new_tokens"):
            value = getattr(self, name)
            check_int(name, value, 1)
        if not self.check_prompts or not all(isinstance(p, str) and p for p in self.check_prompts):
            raise ValueError(f"check_prompts: expected a non-empty list of non-empty strings, "
                             f"got {self.check_prompts!r:.80}")

    @property
    def best_index(self) -> int:
        """Index into :attr:`scores` of the best check (the first on ties); -1 before any check."""
        return int(np.argmax(self.scores)) if self.scores else -1

    @property
    def best_step(self) -> int:
        return self.steps[self.best_index] if self.scores else -1

    def _trained(self) -> dict[str, torch.Tensor]:
        return clone_trainable_state(self.policy)

    @torch.no_grad()
    def check(self, step: int | None = None) -> float:
        """Sample the check prompts, score them with ``gold_fn``, record the mean; keep the state if it is the best."""
        from course_lib.llm.rollout import sample_responses

        lm = self.policy.lm if hasattr(self.policy, "lm") else self.policy
        prompts = [p for p in self.check_prompts for _ in range(self.per_prompt)]
        was_training = lm.training
        lm.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            texts = sample_responses(lm, self.tokenizer, prompts, self.max_new_tokens, temperature=1.0).texts
        lm.train(was_training)
        per_reply = np.array([float(s) for s in self.gold_fn(prompts, texts)])
        score = float(per_reply.mean())
        self.steps.append(self.calls if step is None else step)
        self.scores.append(score)
        self.per_reply.append(per_reply)
        if self.best_index == len(self.scores) - 1:  # a new best (ties keep the earlier one)
            self.best_state = self._trained()
        if self.keep_all:
            self.states[self.steps[-1]] = self._trained()
        return score

    def __call__(self, prompts: list[str], replies: list[str]):
        self.calls += 1
        out = self.gold_fn(prompts, replies)
        if self.calls % self.every == 0:
            self.check(self.calls)
        return out

    def restore(self, step: int | None = None) -> int:
        """Copy the best check's parameters (or, with ``keep_all``, those of the check at ``step``) back into the
        policy; returns the step restored."""
        if self.best_state is None:
            raise RuntimeError("restore: no check has run yet (call check() before training)")
        if step is not None and step not in self.states:
            raise ValueError(f"step: expected a step with a kept state {sorted(self.states)} (keep_all="
                             f"{self.keep_all}), got {step!r}")
        state = self.best_state if step is None else self.states[step]
        params = dict(self.policy.named_parameters())
        missing = [n for n in state if n not in params]
        if missing:
            raise RuntimeError(f"restore: the policy has no parameters named {missing[:3]}; is it the same policy?")
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)
        return self.best_step if step is None else step


# ---- an ensemble of reward heads on one body ----------------------------------------------------


class RewardEnsemble(nn.Module):
    """K linear reward heads on one reward model's body: ``forward`` / ``score_texts`` give (N, K) scores.

    Args:
        rm: a trained :class:`~course_lib.llm.reward_model.RewardModel`; its body is shared (not copied).
        k: number of heads >= 1; each starts as a copy of ``rm``'s head (refit with :func:`fit_ensemble_heads`).
    """

    def __init__(self, rm: RewardModel, k: int):
        super().__init__()
        check_int("k", k, 1)
        self.body = rm.body
        hidden = rm.head.in_features
        self.head = nn.Linear(hidden, k).to(rm.head.weight.device)
        with torch.no_grad():
            self.head.weight.copy_(rm.head.weight.expand(k, hidden))
            self.head.bias.copy_(rm.head.bias.expand(k))
        self.features_only = False

    forward = RewardModel.forward

    def read_out(self, last: torch.Tensor) -> torch.Tensor:
        """(N, H) last-token hidden states -> (N, K) scores (or the (N, H) features with ``features_only``)."""
        if self.features_only:
            return last.float()
        return self.head(last.to(self.head.weight.dtype)).float()

    @torch.no_grad()
    def scores(self, tokenizer, prompts, responses, batch_size: int = 16, max_length: int = 128) -> torch.Tensor:
        """(N, K) scores of N (prompt, response) texts, eval mode."""
        self.eval()
        out = [score_texts(self, tokenizer, list(prompts[i:i + batch_size]), list(responses[i:i + batch_size]),
                           max_length).cpu() for i in range(0, len(prompts), batch_size)]
        return torch.cat(out)

    @torch.no_grad()
    def features(self, tokenizer, prompts, responses, batch_size: int = 16, max_length: int = 128) -> torch.Tensor:
        """(N, H) float32 last-token hidden states of the body, what every head reads."""
        self.features_only = True
        try:
            return self.scores(tokenizer, prompts, responses, batch_size, max_length)
        finally:
            self.features_only = False


def fit_ensemble_heads(ensemble: RewardEnsemble, chosen: torch.Tensor, rejected: torch.Tensor, seed: int = 0,
                       iterations: int = 300, learning_rate: float = 1e-3, weight_decay: float = 1e-2,
                       first_is_original: bool = True) -> list[np.ndarray]:
    """Refit each head on a bootstrap resample of the pairs (Bradley-Terry loss on fixed features).

    Args:
        ensemble: a :class:`RewardEnsemble`; its heads are overwritten in place.
        chosen, rejected: (P, H) features of the P pairs' chosen and rejected texts (:meth:`RewardEnsemble.features`).
        seed: seeds the resamples. iterations, learning_rate, weight_decay: full-batch Adam on each head,
            starting from its current weights, plus an L2 penalty ``weight_decay * |w - w0|^2`` pulling it back
            towards them.
        first_is_original: keep head 0 as it is (the original reward model's head).

    Returns:
        per head, the (P,) int array of pair indices it was fitted on (head 0: all of them when kept).
    """
    if chosen.shape != rejected.shape or chosen.dim() != 2 or chosen.shape[1] != ensemble.head.in_features:
        raise ValueError(f"chosen, rejected: expected two (P, {ensemble.head.in_features}) tensors, got "
                         f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
    rng = np.random.default_rng(seed)
    P, K = chosen.shape[0], ensemble.head.out_features
    device = ensemble.head.weight.device
    diff = (chosen - rejected).to(device)  # (P, H): the bias cancels in a difference of scores
    resamples = []
    for k in range(K):
        if k == 0 and first_is_original:
            resamples.append(np.arange(P))
            continue
        idx = rng.integers(0, P, size=P)  # a bootstrap resample of the pairs
        resamples.append(idx)
        w0 = ensemble.head.weight[k].detach().clone()
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=learning_rate)
        d = diff[torch.as_tensor(idx, device=device)]  # (P, H)
        for _ in range(iterations):
            loss = -nn.functional.logsigmoid(d @ w).mean() + weight_decay * ((w - w0) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            ensemble.head.weight[k].copy_(w)
    return resamples


# ---- best-of-n and Gao et al.'s forms --------------------------------------------------------


def kl_best_of_n(n):
    """KL(best-of-n || pi) = log n - (n - 1) / n nats: the distance of choosing the best of n samples from the policy
    itself (Stiennon et al. 2020, Appendix G.3; Gao et al. 2023, Section 2.1). An upper bound when the proxy has ties;
    ``n`` an int or an int array, every value >= 1."""
    a = np.asarray(n)
    if a.size == 0 or not np.issubdtype(a.dtype, np.integer) or (a < 1).any():
        raise ValueError(f"n: expected ints >= 1, got {n!r}")
    kl = np.log(a) - (a - 1) / a
    return float(kl) if kl.ndim == 0 else kl


@dataclass
class BestOfNCurve:
    """Best-of-n by the proxy, for each prompt and n: the expected gold and proxy score of the chosen reply."""

    ns: np.ndarray
    """(M,) the values of n."""
    gold: np.ndarray
    """(P, M) expected gold score of the proxy's favourite of n samples, per prompt."""
    proxy: np.ndarray
    """(P, M) expected proxy score of that favourite."""
    kl: np.ndarray
    """(M,) :func:`kl_best_of_n` of each n."""


def best_of_n_curve(proxy, gold, ns) -> BestOfNCurve:
    """Expected gold and proxy of best-of-n, exactly, from N samples per prompt (Gao et al. 2023's estimator).

    Choosing the proxy's favourite among n of the N samples drawn without replacement picks the sample of proxy rank j
    (ascending, 1-based) with probability C(j-1, n-1) / C(N, n): averaging over all C(N, n) subsets costs one
    weighted sum, not a resample. n = 1 gives the plain mean; n = N the proxy's top sample.

    Args:
        proxy, gold: (P, N) the proxy's and the gold judge's score of N samples to each of P prompts (ties in the proxy
            are broken by sample order).
        ns: values of n, ints in [1, N].
    """
    r, g = np.asarray(proxy, dtype=float), np.asarray(gold, dtype=float)
    if r.ndim != 2 or r.shape != g.shape or r.shape[1] < 1:
        raise ValueError(f"proxy, gold: expected two (P, N) arrays of one shape, got shapes {r.shape} and {g.shape}")
    N = r.shape[1]
    ns = np.asarray(ns)
    if ns.ndim != 1 or not np.issubdtype(ns.dtype, np.integer) or (ns < 1).any() or (ns > N).any():
        raise ValueError(f"ns: expected ints in [1, {N}], got {ns.tolist()!r}")
    order = np.argsort(r, axis=1, kind="stable")  # (P, N) ascending proxy
    r_sorted, g_sorted = np.take_along_axis(r, order, 1), np.take_along_axis(g, order, 1)
    weights = np.array([[math.comb(j - 1, n - 1) / math.comb(N, n) for j in range(1, N + 1)] for n in ns])  # (M, N)
    return BestOfNCurve(ns, g_sorted @ weights.T, r_sorted @ weights.T, kl_best_of_n(ns))


@dataclass
class GaoFit:
    """A fitted form of Gao et al. (2023): gold gain R(d) = d (alpha - beta d) for best-of-n (``"bon"``) or
    d (alpha - beta log d) for RL (``"rl"``), d = sqrt(KL). Call it on d to evaluate."""

    form: str
    alpha: float
    beta: float

    def __call__(self, d):
        d = np.asarray(d, dtype=float)
        if self.form == "bon":
            return d * (self.alpha - self.beta * d)
        return d * (self.alpha - self.beta * np.log(np.where(d > 0, d, 1.0)))

    @property
    def peak(self) -> float:
        """The d where R peaks: alpha / (2 beta) (bon) or exp(alpha / beta - 1) (rl); inf when beta <= 0."""
        if self.beta <= 0:
            return math.inf
        return self.alpha / (2 * self.beta) if self.form == "bon" else math.exp(self.alpha / self.beta - 1)


def fit_gao(d, gain, form: str) -> GaoFit:
    """Least-squares fit of Gao et al.'s form (``"bon"`` or ``"rl"``) to gold gains ``gain`` at distances ``d`` (both
    1-d, same length >= 2, d >= 0 and, for ``"rl"``, d > 0). Both forms are linear in (alpha, beta)."""
    if form not in ("bon", "rl"):
        raise ValueError(f"form: expected 'bon' or 'rl', got {form!r}")
    d, y = np.asarray(d, dtype=float), np.asarray(gain, dtype=float)
    if d.ndim != 1 or d.shape != y.shape or len(d) < 2 or not (np.isfinite(d).all() and np.isfinite(y).all()):
        raise ValueError(f"d, gain: expected two finite 1-d arrays of one length >= 2, got shapes {d.shape}, {y.shape}")
    if (d < 0).any() or (form == "rl" and (d <= 0).any()):
        raise ValueError(f"d: expected distances {'> 0' if form == 'rl' else '>= 0'}, got min {d.min()}")
    second = d * d if form == "bon" else d * np.log(d)
    (alpha, beta), *_ = np.linalg.lstsq(np.stack([d, -second], axis=1), y, rcond=None)
    return GaoFit(form, float(alpha), float(beta))


@dataclass
class BestOfNSamples:
    """n samples of one policy to each of P prompts, scored by a proxy (the reward model) and the gold judge."""

    prompts: list[str]
    """(P,) the formatted prompts."""
    texts: list[list[str]]
    """(P, n) the replies (:class:`~course_lib.data.preferences.Reply` s), prompt by prompt."""
    proxy: np.ndarray
    """(P, n) the proxy's score of each reply."""
    gold: np.ndarray
    """(P, n) the gold judge's score of each reply."""
    ended: np.ndarray
    """(P, n) bool: the reply ended with EOS within the token limit."""
    seconds: float = 0.0
    """Wall time of sampling and scoring."""

    @property
    def n(self) -> int:
        return self.gold.shape[1]

    @property
    def topics(self) -> list[str]:
        """(P,) the topic of each prompt: the unit :func:`~course_lib.llm.evaluation.paired_bootstrap` resamples."""
        from course_lib.data.prompts import topic_of

        return [topic_of(p) for p in self.prompts]

    def picked(self) -> np.ndarray:
        """(P,) the index of the reply the proxy scores highest among each prompt's n (the first on ties)."""
        return np.argmax(self.proxy, axis=1)


def best_of_n_samples(lm, tokenizer, prompts, n: int, proxy_fn, gold_fn, max_new_tokens: int = 24,
                      seed: int = 2024, chunk: int = 64, progress: bool = False) -> BestOfNSamples:
    """Sample ``n`` replies (temperature 1) to every prompt from ``lm``; score each with the proxy and the gold judge.

    Args:
        lm: the causal LM to sample (unchanged: best-of-n trains nothing).
        tokenizer: its tokenizer, padding on the left.
        prompts: P formatted prompts.
        n: samples per prompt, >= 1.
        proxy_fn, gold_fn: ``fn(prompts, replies)`` -> one float per reply (the reward model's, the annotator's).
        max_new_tokens: the reply limit. seed: seeds the sampling (``torch.manual_seed`` once, before the first chunk).
        chunk: replies sampled per batch (a prompt's n samples share its prefill).
        progress: show a progress bar over the batches.

    Returns:
        a :class:`BestOfNSamples`; ``picked()`` is best-of-n's choice, and
        :func:`~course_lib.llm.overoptimisation.best_of_n_curve` gives best-of-k for every k <= n.
    """
    import torch

    from course_lib.llm.rollout import sample_responses

    prompts = list(prompts) if not isinstance(prompts, str) else prompts
    if isinstance(prompts, str) or not prompts:
        raise ValueError(f"prompts: expected a non-empty list of formatted prompts, got {prompts!r:.80}")
    for name, value in (("n", n), ("max_new_tokens", max_new_tokens), ("chunk", chunk)):
        check_int(name, value, 1)
    t0 = time.perf_counter()
    repeated = [p for p in prompts for _ in range(n)]  # (P * n,) prompt by prompt
    was_training = lm.training
    lm.eval()
    torch.manual_seed(seed)
    texts, ended = [], []
    for i in tqdm(range(0, len(repeated), chunk), desc=f"best-of-{n} sampling", unit="batch", disable=not progress,
                  leave=False):
        samples = sample_responses(lm, tokenizer, repeated[i:i + chunk], max_new_tokens, temperature=1.0)
        texts += samples.texts
        ended.append(samples.ended(tokenizer.eos_token_id).cpu().numpy())  # (b,)
    lm.train(was_training)
    shape = (len(prompts), n)
    scored = {}
    for name, fn in (("proxy_fn", proxy_fn), ("gold_fn", gold_fn)):
        scores = np.asarray([float(s) for s in fn(repeated, texts)])
        if scores.shape != (len(texts),):
            raise ValueError(f"{name}: expected one score per reply, got {scores.size} for {len(texts)}")
        scored[name] = scores.reshape(shape)  # (P, n)
    return BestOfNSamples(list(prompts), [texts[i * n:(i + 1) * n] for i in range(len(prompts))],
                          scored["proxy_fn"], scored["gold_fn"], np.concatenate(ended).reshape(shape),
                          time.perf_counter() - t0)


def clone_trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the parameters that currently require gradients (what a checkpoint of a run needs)."""
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


__all__ = ["win_rate", "ensemble_reward", "early_stop_index", "GoldCheck", "RewardEnsemble", "fit_ensemble_heads",
           "kl_best_of_n", "BestOfNSamples", "best_of_n_samples", "BestOfNCurve", "best_of_n_curve", "GaoFit", "fit_gao", "clone_trainable_state"]
