"""GRPO with verifiable rewards: a group of samples per prompt, the group as the baseline, no value model (lesson 14).

Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath", Section 4.1) is PPO without
the critic: for each prompt q it samples a group of G responses o_1..o_G, scores them with a reward
program, and uses each response's reward relative to its own group as the advantage of every one of
its tokens. Per step:

1. a batch of prompts, each repeated G times; sample one response per copy (temperature > 0);
2. score the responses with ``reward_fn`` (here a program: correctness, format);
3. group advantages A_i = (r_i - mean(r)) / (std(r) + eps) over each prompt's G responses
   (:func:`~course_lib.rl.group_advantages`; outcome supervision, Shao et al. 2024, Section 4.1.2),
   or r_i - mean(r) without the std-scaling (Dr. GRPO, Liu et al. 2025);
4. old log-probs (one forward without gradient; skipped when ``update_epochs`` is 1, where old = current),
   and the frozen reference's log-probs when ``kl_coef`` > 0;
5. ``update_epochs`` passes on the batch: PPO's clipped ratio per token, optionally minus kl_coef times
   the k3 estimate of KL(pi || pi_ref) per token, reduced over tokens by the chosen normalisation
   (:func:`grpo_token_loss`), with RLHF's guards (a non-finite loss or gradient norm raises; an epoch whose ratio
   exceeds ``max_ratio`` is skipped; approx KL above ``target_kl`` stops the step's epochs; the update's approx KL
   averaged over 3 steps above ``divergence_kl`` stops the run);
6. log: reward, its spread within groups, the share of groups with zero spread, response length,
   KL to the reference, clip fraction, and any extra scorers (accuracy, format rate).

With ``checkpoint=`` the run saves itself (atomically) every ``checkpoint_every`` steps, at its end and on
Ctrl-C; ``resume=`` goes on from such a file exactly as the uninterrupted run would have.

The loss normalisations (``loss_norm``), which differ in how a response's length weighs:

* ``"sequence"``: mean over each response's tokens, then over responses: GRPO's objective
  (Shao et al. 2024, Eq. 3). Every response weighs the same, so a token of a long response weighs
  less: a wrong long answer is penalised less per token than a wrong short one (the length bias
  that Liu et al. 2025 point out);
* ``"token"``: one mean over all the batch's tokens (DAPO, Yu et al. 2025, Section 3.3): every token
  weighs the same;
* ``"constant"``: the sum over all tokens divided by (responses x max_new_tokens), a constant
  (Dr. GRPO, Liu et al. 2025): no dependence on lengths at all.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from course_lib.llm.feedback import model_fingerprint
from course_lib.llm.finetune import adamw, parse_trainable, train_top_layers, untied_lm_head
from course_lib.llm.rollout import group_response_logprobs, sample_responses
from course_lib.rl import (DivergenceGuard, clip_diagnostics, clipped_objective, group_advantages, guarded_step,
                           kl_k3)
from course_lib.rl import masked_mean, masked_sum
from course_lib.utils import set_seed
from course_lib.utils.checkpoint import (DeferredInterrupt, check_checkpoint_args, check_same_as_saved, resume_state,
                                         rng_states, save_checkpoint, set_rng_states)
from course_lib.utils.device import autocast, check_mixed_precision
from course_lib.utils.metrics import MetricLogger
from course_lib.utils.validation import check_float, check_int

RewardFn = Callable[[list[str], list[str]], Sequence[float]]
"""reward_fn(prompts, responses) -> one float per response (here a program that checks the answer)."""

LOSS_NORMS = ("sequence", "token", "constant")
"""The loss normalisations of :func:`grpo_token_loss`: GRPO's, DAPO's and Dr. GRPO's."""


@dataclass(frozen=True)
class GRPOConfig:
    """Hyper-parameters of :func:`grpo`."""

    steps: int = 20
    """GRPO steps (each: a batch of prompts, G samples each, scored and trained on); usually 10 to 1,000."""
    prompts_per_step: int = 4
    """Prompts per step; usually 4 to 64 (DeepSeekMath: 1,024)."""
    group_size: int = 8
    """G, responses sampled per prompt, >= 2; usually 4 to 16 (DeepSeekMath: 64)."""
    max_new_tokens: int = 24
    """Response length limit in tokens; usually 16 to 1,024."""
    temperature: float = 1.0
    """Sampling temperature > 0; the policy *is* softmax(logits / temperature); usually 0.7 to 1."""
    learning_rate: float = 1e-5
    """Adam step size in (0, 1); usually 1e-6 to 1e-5 for full fine-tuning, 1e-5 to 1e-4 for a few layers."""
    update_epochs: int = 1
    """Updates per batch (GRPO's mu); 1 is on-policy (the ratio is 1 and the clip never acts); usually 1 to 4."""
    clip_eps: float = 0.2
    """PPO's epsilon in (0, 1); usually 0.1 to 0.3."""
    kl_coef: float = 0.0
    """beta >= 0, weight of the per-token k3 KL to the frozen reference; 0 builds no reference; usually 0 to 0.04."""
    scale_advantages: bool = True
    """Divide each group's centred rewards by their std (GRPO) or not (Dr. GRPO, Liu et al. 2025)."""
    loss_norm: str = "sequence"
    """How token terms are averaged: "sequence" (GRPO), "token" (DAPO) or "constant" (Dr. GRPO)."""
    max_grad_norm: float = 1.0
    """Clip the gradient to this global L2 norm, > 0; usually 0.5 to 1."""
    target_kl: float | None = 0.5
    """Stop a step's updates once an epoch's approx KL(old || new) per token exceeds this (> 0), or None; acts only
    with ``update_epochs`` > 1 (with one update the old policy is the current one)."""
    max_ratio: float = 10.0
    """Skip an epoch's update whose largest probability ratio exceeds this (> 1); acts only with ``update_epochs`` > 1."""
    divergence_kl: float | None = 1.0
    """Stop the whole run (:class:`~course_lib.rl.DivergenceError`) once the approx KL(old || new) per token of each
    step's update, measured after it by one forward pass without gradient, averaged over the last 3 steps, exceeds
    this (> 0), or None (off, for a deliberate experiment; also saves that forward pass)."""
    trainable: str = "all"
    """``"all"`` parameters; ``"top:N"``: the top N transformer layers and the final norm;
    ``"lora:R"``: rank-R LoRA adapters on every projection (see :func:`train_top_layers`)."""
    mixed_precision: str = "no"
    """``"no"`` (fp32) or ``"bf16"``: sampling, every forward pass and the loss under bf16 autocast, weights and
    Adam in fp32 (a GPU)."""

    def __post_init__(self):
        for name, low in (("steps", 1), ("prompts_per_step", 1), ("group_size", 2), ("max_new_tokens", 1),
                          ("update_epochs", 1)):
            value = getattr(self, name)
            check_int(name, value, low)
        for name, interval in (("temperature", "> 0"), ("learning_rate", "(0, 1)"), ("clip_eps", "(0, 1)"),
                               ("kl_coef", ">= 0"), ("max_grad_norm", "> 0"), ("max_ratio", "> 1")):
            check_float(name, getattr(self, name), interval)
        check_float("target_kl", self.target_kl, "> 0", none_ok=True)
        check_float("divergence_kl", self.divergence_kl, "> 0", none_ok=True)
        if not isinstance(self.scale_advantages, bool):
            raise ValueError(f"scale_advantages: expected True or False, got {self.scale_advantages!r}")
        if self.loss_norm not in LOSS_NORMS:
            raise ValueError(f"loss_norm: expected one of {LOSS_NORMS}, got {self.loss_norm!r}")
        check_mixed_precision(self.mixed_precision)
        parse_trainable(self.trainable)

    @property
    def batch_size(self) -> int:
        """Responses per step: prompts_per_step * group_size."""
        return self.prompts_per_step * self.group_size


GRPO_PRESETS: dict[str, GRPOConfig] = {
    # The test suite with the tiny model: 2 steps of 2 prompts x 4 samples, 8 tokens; the loop runs and updates.
    # As RLHF's ci preset, the divergence guard is off: on SmolLM2 these steps check the code, not learning.
    "ci": GRPOConfig(steps=2, prompts_per_step=2, group_size=4, max_new_tokens=8, learning_rate=1e-3,
                     divergence_kl=None),
    # SmolLM2-135M on a laptop CPU: the top 6 of 30 layers, 4 prompts x 8 samples x 24 tokens per step;
    # 14 steps keep lesson 14 under 10 minutes on a 2-core CPU.
    "cpu": GRPOConfig(steps=14, prompts_per_step=4, group_size=8, max_new_tokens=24, learning_rate=5e-5,
                      trainable="top:6"),
    # SmolLM2-135M on a GPU: every parameter, larger groups and batches, a small KL anchor, bf16 autocast over
    # fp32 weights.
    "gpu": GRPOConfig(steps=100, prompts_per_step=16, group_size=16, max_new_tokens=48, learning_rate=2e-6,
                      update_epochs=2, kl_coef=0.02, mixed_precision="bf16"),
}


def grpo_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    clip_eps: float = 0.2, loss_norm: str = "sequence", ref_logp: torch.Tensor | None = None,
                    kl_coef: float = 0.0, max_new_tokens: int | None = None) -> tuple[torch.Tensor, dict]:
    """GRPO's clipped token loss, to minimise (Shao et al. 2024, Eq. 3, negated):

        ratio_t   = exp(logp_t - old_logp_t)
        term_t    = min(ratio_t * A_i, clip(ratio_t, 1 - eps, 1 + eps) * A_i) - kl_coef * k3_t
        k3_t      = pi_ref / pi - log(pi_ref / pi) - 1            (Eq. 4; Schulman's k3, >= 0)
        (its value estimates KL(pi || pi_ref); as a loss on samples from pi, its expected gradient is that of
        KL(pi_ref || pi): -sum_y pi_ref(y) grad log pi(y); Tang & Munos 2025; lesson 14 checks it)
        loss      = -reduce(term) over the response tokens, by ``loss_norm``:
            "sequence":  mean_i [ (1 / |o_i|) sum_t term_i,t ]          (GRPO, Eq. 3)
            "token":     sum_i sum_t term_i,t / sum_i |o_i|             (DAPO, Yu et al. 2025, Section 3.3)
            "constant":  sum_i sum_t term_i,t / (N * max_new_tokens)    (Dr. GRPO, Liu et al. 2025)

    The clipped term and the diagnostics are PPO's own, :func:`course_lib.rl.clipped_objective` and
    :func:`course_lib.rl.clip_diagnostics`, the very functions CartPole's PPO and RLHF-PPO use.
    With ``loss_norm="token"`` and no KL this is exactly :func:`course_lib.rl.clipped_surrogate` with
    A_i broadcast over the tokens (tested); the other two only weigh the same token terms differently.

    Args:
        logp: (N, R) log pi_theta of each response token (with gradient); N = B * G responses.
        old_logp: (N, R) the same at sampling time (no gradient).
        advantages: (N,) one advantage per response, shared by all its tokens.
        mask: (N, R) bool, True on real response tokens (at least one per row).
        clip_eps: epsilon in (0, 1). loss_norm: one of :data:`LOSS_NORMS`.
        ref_logp: (N, R) the frozen reference's log-probs, needed when ``kl_coef`` > 0.
        kl_coef: beta >= 0. max_new_tokens: the constant of ``"constant"`` (default R).

    Returns:
        ``(loss, info)``; info: ``clipfrac``, ``approx_kl`` (k3 of KL(old || new) per token) and
        ``ratio_mean`` (:func:`~course_lib.rl.clip_diagnostics`), ``kl`` (mean k3 of KL(pi || pi_ref) per
        token; 0 without a reference).
    """
    if loss_norm not in LOSS_NORMS:
        raise ValueError(f"loss_norm: expected one of {LOSS_NORMS}, got {loss_norm!r}")
    for name, t in (("old_logp", old_logp), ("mask", mask)):
        if t.shape != logp.shape:
            raise ValueError(f"{name}: expected shape {tuple(logp.shape)} (logp.shape), got {tuple(t.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages: expected shape ({logp.shape[0]},), one per response, got "
                         f"{tuple(advantages.shape)}")
    mask = mask.bool()
    if not mask.any(dim=1).all():
        raise ValueError("mask: expected at least one real token per response")
    adv = advantages.detach()[:, None]  # (N, 1): broadcast over the response's tokens
    term, ratio = clipped_objective(logp, old_logp, adv, clip_eps)  # (N, R) each: PPO's clipped term per token
    kl = torch.zeros_like(logp)
    if kl_coef > 0:
        if ref_logp is None or ref_logp.shape != logp.shape:
            raise ValueError(f"ref_logp: expected shape {tuple(logp.shape)} when kl_coef > 0, got "
                             f"{None if ref_logp is None else tuple(ref_logp.shape)}")
        kl = kl_k3(logp, ref_logp.detach())  # (N, R): samples from pi, so k3 of KL(pi || pi_ref)
        term = term - kl_coef * kl
    if loss_norm == "sequence":
        loss = -masked_mean(term, mask, dim=1).mean()  # (N,) per-response means, then their mean
    elif loss_norm == "token":
        loss = -masked_mean(term, mask)
    else:
        loss = -masked_sum(term, mask) / (logp.shape[0] * (max_new_tokens or logp.shape[1]))
    info = clip_diagnostics(logp, old_logp, ratio, clip_eps, mask)
    with torch.no_grad():
        info["kl"] = float(masked_mean(kl.detach(), mask))
    return loss, info


@dataclass
class GRPOResult:
    """What :func:`grpo` returns."""

    logger: MetricLogger
    """Every metric per step (names in docs/metrics.md)."""
    reference: nn.Module | None
    """The frozen reference (a copy of the starting LM), or None when ``kl_coef`` is 0."""
    samples: list[tuple[str, str, float]] = field(default_factory=list)
    """(prompt, response, reward) of the last step's batch, group by group."""
    stopped_early: list[str] = field(default_factory=list)
    """One line per step whose updates stopped before the last epoch at ``target_kl``, with the reason."""
    skipped_updates: int = 0
    """Epochs whose update was skipped for a probability ratio above ``max_ratio``."""
    seconds: float = 0.0


def prompts_digest(prompts: Sequence[str]) -> str:
    """A short hash of the prompts in their order: a resumed run must draw from the very prompts the saved one did."""
    return hashlib.sha256(repr(list(prompts)).encode()).hexdigest()[:16]


def grpo(lm, tokenizer, prompts: Sequence[str], reward_fn: RewardFn, config: GRPOConfig = GRPO_PRESETS["cpu"],
         seed: int = 0, extra_metrics: dict[str, RewardFn] | None = None, progress: bool = True,
         live: bool | None = None, checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
         resume: str | Path | None = None) -> GRPOResult:
    """Fine-tune the causal LM ``lm`` in place with GRPO against ``reward_fn``; no value model.

    Args:
        lm: a Hugging Face causal LM (the policy), trained in place. With ``resume``: the model the saved run
            started from, loaded afresh (not the one an interrupted call trained in place; with ``kl_coef`` > 0
            it is copied as the reference again); checked by its fingerprint.
        tokenizer: its tokenizer, padding on the left.
        prompts: formatted training prompts, cycled through in a shuffled order, ``prompts_per_step`` per step.
        reward_fn: ``reward_fn(prompts, responses)`` -> one float per response.
        config: a :class:`GRPOConfig`, e.g. ``GRPO_PRESETS["cpu"]``.
        seed: seeds the prompt order and the sampling; ignored with ``resume`` (the file holds the random states).
        extra_metrics: name -> scorer, each logged as ``grpo/<name>`` (the mean over the step's responses),
            e.g. ``{"accuracy": correctness_reward, "format_rate": format_reward}``; not trained on.
        progress, live: passed to :class:`MetricLogger`.
        checkpoint: the file to save the run to (atomically: a save cut short leaves the previous file), every
            ``checkpoint_every`` steps, at the end of the call, and on Ctrl-C (the current step finishes, is saved,
            then KeyboardInterrupt is raised). It holds the trained parameters (those the optimiser steps), the
            optimiser's state, the config, the step, the prompts still to come in the current shuffled pass and
            the state of the generator that shuffles them, every global random state (sampling draws from
            torch's), the divergence guard's window, the starting model's fingerprint (the reference is a copy of
            that model), a hash of the prompts, the metrics logged so far, ``stopped_early`` and
            ``skipped_updates``.
        checkpoint_every: save every this many steps (an int >= 1); None: only at the end and on Ctrl-C.
        resume: go on from a file written with ``checkpoint``, with the same ``config`` and ``prompts`` and the
            starting model: the result equals that of the run never stopped. ``reward_fn`` and ``extra_metrics``
            are not saved: pass the same ones. ``result.logger`` holds the whole run's metrics.

    Raises:
        ValueError: a bad argument (named in the message); with ``resume``, a checkpoint of another config, other
            prompts or another starting model.
        FloatingPointError: a non-finite reward, loss or gradient norm, naming the step and epoch.
        DivergenceError: the steps' approx KL(old || new), averaged over 3 steps, exceeded ``config.divergence_kl``.
        KeyboardInterrupt: after Ctrl-C, once the step is finished and saved to ``checkpoint``.
    """
    if not isinstance(config, GRPOConfig):
        raise ValueError(f"config: expected a GRPOConfig (e.g. GRPO_PRESETS['cpu']), got {config!r}")
    prompts = list(prompts)
    if len(prompts) < config.prompts_per_step or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"prompts: expected at least prompts_per_step ({config.prompts_per_step}) non-empty "
                         f"strings, got {len(prompts)}")
    extra_metrics = dict(extra_metrics or {})
    check_checkpoint_args(checkpoint, checkpoint_every, config)
    state = None
    identity = {}  # what a resumed run must share with the saved one
    if checkpoint is not None or resume is not None:
        identity = {"model": model_fingerprint(lm), "prompts": prompts_digest(prompts)}
    if resume is not None:
        state = resume_state(resume, "grpo", config)
        check_same_as_saved("prompts", identity["prompts"], state["prompts"], resume,
                            f"the {state['num_prompts']} prompts, in the same order, that", f"{len(prompts)} prompts given")
        check_same_as_saved("lm", identity["model"], state["model"], resume, "the starting model",
                            "load it again (the call that saved the file trained its model in place, and the "
                            "reference is a copy of the starting model)")
    set_seed(seed)
    reference = None
    if config.kl_coef > 0:  # the frozen copy costs memory and a forward per step: only when it is used
        reference = copy.deepcopy(lm).eval().requires_grad_(False)
    params = train_top_layers(lm.model, untied_lm_head(lm), config.trainable)
    optimizer = adamw(params, config.learning_rate)
    rng = np.random.default_rng(seed)
    order: list[int] = []
    keys = ["grpo/reward_mean", *(f"grpo/{n}" for n in extra_metrics), "grpo/zero_std_share",
            "grpo/response_length"]
    logger = MetricLogger(total=config.steps, desc="GRPO", live=live, progress=progress, keys_to_plot=keys[:6])
    result = GRPOResult(logger, reference)
    B, G = config.prompts_per_step, config.group_size
    device = next(lm.parameters()).device
    guard = DivergenceGuard(config.divergence_kl)
    first = 0
    names = {id(p): name for name, p in lm.named_parameters()}
    trained = {names[id(p)]: p for p in params}
    if state is not None:  # everything a straight run would hold after the saved step
        if set(state["params"]) != set(trained):
            raise ValueError(f"resume: {str(resume)!r} holds the parameters {sorted(state['params'])[:3]}..., "
                             f"this model trains {sorted(trained)[:3]}...")
        with torch.no_grad():
            for name, p in trained.items():
                p.copy_(state["params"][name])
        optimizer.load_state_dict(state["optimizer"])
        first, order, rng.bit_generator.state = state["step"], list(state["order"]), state["order_rng"]
        guard.recent = list(state["guard"])
        result.stopped_early, result.skipped_updates = list(state["stopped_early"]), state["skipped_updates"]
        logger.history = {k: list(v) for k, v in state["history"].items()}
        set_rng_states(state["rng"])

    def save(step: int) -> None:
        save_checkpoint({"config": asdict(config), "step": step, "order": list(order),
                         "order_rng": rng.bit_generator.state, "params": {n: p.detach() for n, p in trained.items()},
                         "optimizer": optimizer.state_dict(), "rng": rng_states(), "guard": list(guard.recent),
                         **identity, "num_prompts": len(prompts), "history": logger.history,
                         "stopped_early": result.stopped_early, "skipped_updates": result.skipped_updates},
                        checkpoint, "grpo")

    saved_step = None
    started = time.perf_counter()
    with DeferredInterrupt("GRPO", enabled=checkpoint is not None) as interrupt:
        for step in range(first, config.steps):
            # 1. B prompts (a fresh shuffled pass when the last one is used up), each repeated G times, sampled
            while len(order) < B:
                order += rng.permutation(len(prompts)).tolist()
            batch_prompts = [prompts[i] for i in order[:B] for _ in range(G)]  # (B * G,), group by group
            del order[:B]
            lm.eval()
            with autocast(device, config.mixed_precision):  # the same precision as the update's forward passes
                samples = sample_responses(lm, tokenizer, batch_prompts, config.max_new_tokens, config.temperature)
            mask = samples.response_mask  # (B*G, R)

            # 2. score every response with the reward program
            rewards = torch.as_tensor(np.asarray(reward_fn(batch_prompts, samples.texts), dtype=np.float32),
                                      device=device)  # (B*G,)
            if rewards.shape != (B * G,) or not torch.isfinite(rewards).all():
                raise FloatingPointError(f"step {step}: reward_fn returned {rewards.tolist()}; expected {B * G} "
                                         "finite floats")

            # 3. group-relative advantages: each response against the other G - 1 of its prompt (Shao et al. 2024)
            grouped = rewards.view(B, G)  # (B, G)
            advantages = group_advantages(grouped, scale=config.scale_advantages).reshape(B * G)  # (B*G,)

            # 4. old log-probs (only needed for more than one update per batch) and the reference's
            with torch.no_grad(), autocast(device, config.mixed_precision):
                old_logp = (group_response_logprobs(lm, samples, G, config.temperature)
                            if config.update_epochs > 1 else None)  # (B*G, R)
                ref_logp = (group_response_logprobs(reference, samples, G, config.temperature)
                            if reference is not None else None)  # (B*G, R)

            # 5. epochs of updates on the whole batch: the clipped token loss (+ k3 KL), normalised by loss_norm
            lm.train()
            infos = []
            for epoch in range(config.update_epochs):
                with autocast(device, config.mixed_precision):  # forward and loss; backward and step on fp32 weights
                    # (B*G, R) fp32: each prompt runs once
                    logp = group_response_logprobs(lm, samples, G, config.temperature)
                    if old_logp is None:  # one update: old = current, ratio 1
                        old_logp = logp.detach()
                    loss, info = grpo_token_loss(logp, old_logp, advantages, mask, config.clip_eps, config.loss_norm,
                                                 ref_logp, config.kl_coef, config.max_new_tokens)
                ratio_max = float(torch.exp(logp - old_logp).detach()[mask.bool()].max())
                if ratio_max > config.max_ratio:  # an outlier: no step
                    result.skipped_updates += 1
                    continue
                # backward and a clipped step; a non-finite loss or gradient norm raises FloatingPointError
                guarded_step(optimizer, loss, params, config.max_grad_norm, f"step {step}, epoch {epoch}")
                infos.append({"losses/policy_loss": loss.item(), "losses/clipfrac": info["clipfrac"],
                              "losses/approx_kl": info["approx_kl"], "grpo/kl": info["kl"]})
                if config.target_kl is not None and info["approx_kl"] > config.target_kl:
                    result.stopped_early.append(f"step {step}: updates stopped after epoch {epoch}: approx KL "
                                                f"{info['approx_kl']:.3f} > target_kl {config.target_kl}")
                    break
            if config.divergence_kl is not None:  # the update's own KL: the policy after it against the sampling one
                with torch.no_grad(), autocast(device, config.mixed_precision):
                    new_logp = group_response_logprobs(lm, samples, G, config.temperature)  # (B*G, R)
                moved = clip_diagnostics(new_logp, old_logp, torch.exp(new_logp - old_logp), config.clip_eps, mask)
                guard.check(moved["approx_kl"], f"step {step}")

            # 6. log the step, and save when due
            group_std = grouped.std(dim=1)  # (B,) Bessel-corrected: the std group_advantages divides by (as TRL's)
            stats = {"grpo/reward_mean": float(rewards.mean()), "grpo/reward_std": float(group_std.mean()),
                     "grpo/zero_std_share": float((group_std == 0).float().mean()),
                     "grpo/response_length": float(mask.sum(dim=1).float().mean())}
            for name, fn in extra_metrics.items():
                stats[f"grpo/{name}"] = float(np.mean(fn(batch_prompts, samples.texts)))
            for name in infos[0] if infos else []:  # every epoch skipped at max_ratio: nothing trained, nothing logged
                stats[name] = float(np.mean([i[name] for i in infos]))
            logger.log(step + 1, stats)
            result.samples = list(zip(batch_prompts, samples.texts, rewards.tolist()))

            interrupted = interrupt.requested
            if interrupted or (checkpoint_every is not None and (step + 1) % checkpoint_every == 0):
                save(step + 1)
                saved_step = step + 1
            if interrupted:
                lm.eval()
                logger.close()
                raise KeyboardInterrupt(f"GRPO: interrupted after {step + 1} of {config.steps} steps, saved to "
                                        f"{str(checkpoint)!r}; go on with resume={str(checkpoint)!r}")
        if checkpoint is not None and saved_step != config.steps:
            save(config.steps)
    lm.eval()
    logger.close()
    result.seconds = time.perf_counter() - started
    return result
