"""RLHF with PPO: the LLM policy, a reward function, a frozen reference, one loop in numbered phases (lesson 11).

The same PPO as CartPole's (:mod:`course_lib.deep.ppo`), on the token-level MDP of
:mod:`course_lib.llm.rollout`: the same :func:`~course_lib.rl.gae`,
:func:`~course_lib.rl.clipped_surrogate` and :func:`~course_lib.rl.value_loss`, now with
masks, because responses have different lengths. Per step (Ziegler et al. 2019; Stiennon
et al. 2020; Ouyang et al. 2022; the implementation details of Huang et al. 2024, "The N+
implementation details of RLHF with PPO"):

1. sample one response per prompt from the policy (temperature > 0: exploration);
2. score the finished responses with the reward function (a reward model, or any scorer);
3. one forward pass of the policy gives the old log-probs and values; one of the frozen
   reference gives its log-probs (once per batch, never per minibatch);
4. per-token rewards: -beta * (log pi - log pi_ref) on every response token, plus the score
   on the last one (:func:`~course_lib.llm.rollout.token_rewards`);
5. GAE over the response tokens (the response ends at its last token: terminated), then
   whitened advantages over the batch's real tokens;
6. PPO epochs over minibatches: clipped surrogate + clipped value loss - entropy bonus, with
   guards (non-finite loss: error; ratio outliers: skip the minibatch; approx KL above
   ``target_kl``: stop this step's update, with the reason logged; approx KL averaged over 3 steps
   above ``divergence_kl``: stop the run with :class:`~course_lib.rl.DivergenceError`);
7. log: reward, KL to the reference, entropy, response length, EOS rate, distinct-2, and
   PPO's own diagnostics.

Deliberate simplifications: no reward or value normalisation across steps, and a fixed
``kl_coef`` (no adaptive KL controller); both are one line away and named in the lesson.

Checkpoints (:func:`rlhf_ppo` with ``checkpoint=`` / ``resume=``) hold the trained parameters, Adam's state, the
step, the prompt order, every random state and the divergence guard's window, and name the reference model by a
fingerprint: ``steps=2N`` stopped after N steps (Ctrl-C) and resumed equals 2N steps in one call (tested in fp32).
"""

from __future__ import annotations

import copy
import hashlib
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from course_lib.llm.evaluation import distinct_n
from course_lib.llm.finetune import adamw, parse_trainable, train_top_layers, untied_lm_head
from course_lib.llm.rollout import (
    PolicyWithValue,
    Samples,
    response_outputs,
    sample_responses,
    sequence_kl,
    token_rewards,
)
from course_lib.llm.tokens import last_token_index
from course_lib.rl import (DivergenceGuard, clip_diagnostics, clipped_surrogate, gae, guarded_step, masked_mean,
                           masked_whiten, value_loss)
from course_lib.utils import set_seed
from course_lib.utils.checkpoint import (DeferredInterrupt, check_checkpoint_args, resume_state, rng_states,
                                         save_checkpoint, set_rng_states)
from course_lib.utils.device import autocast, check_mixed_precision
from course_lib.utils.metrics import MetricLogger
from course_lib.utils.validation import check_float, check_int

RewardFn = Callable[[list[str], list[str]], Sequence[float]]
"""reward_fn(prompts, responses) -> one float per response (a reward model's score, or any scorer). The
responses are :class:`~course_lib.data.preferences.Reply` s: text for a text-based scorer, token ids (EOS
included when finished) for a reward model."""


@dataclass(frozen=True)
class RLHFConfig:
    """Hyper-parameters of :func:`rlhf_ppo`."""

    steps: int = 20
    """PPO steps (each: one batch of prompts, sampled, scored, and trained on); usually 10 to 1,000."""
    batch_size: int = 8
    """Prompts per step, one response each; usually 4 to 512."""
    max_new_tokens: int = 24
    """Response length limit R in tokens; usually 16 to 512."""
    temperature: float = 1.0
    """Sampling temperature > 0; the policy *is* softmax(logits / temperature); usually 0.7 to 1."""
    learning_rate: float = 1e-5
    """Adam step size in (0, 1); usually 1e-6 to 3e-5 for full fine-tuning, 1e-4 to 1e-3 for a few layers."""
    kl_coef: float = 0.05
    """beta >= 0, the per-token KL penalty to the reference; usually 0.01 to 0.2."""
    gamma: float = 1.0
    """Discount over tokens in [0, 1]; 1 is standard (one score per response)."""
    gae_lambda: float = 0.95
    """GAE's lambda over tokens in [0, 1]; usually 0.9 to 1."""
    update_epochs: int = 4
    """Passes over each batch; usually 1 to 4."""
    num_minibatches: int = 1
    """Minibatches per epoch, dividing batch_size; usually 1 to 8."""
    clip_eps: float = 0.2
    """PPO's epsilon in (0, 1); usually 0.1 to 0.3."""
    value_clip: float | None = 0.2
    """Clip the value update around the old values by this (> 0), or None; usually 0.2."""
    vf_coef: float = 0.1
    """Weight of the value loss, > 0; usually 0.1 to 1."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus, >= 0; usually 0 (the KL penalty already keeps the policy spread out)."""
    max_grad_norm: float = 1.0
    """Clip the gradient to this global L2 norm, > 0; usually 0.5 to 1."""
    target_kl: float | None = 0.5
    """Stop a step's update once a minibatch's approx KL(old || new) per token exceeds this (> 0), or None."""
    max_ratio: float = 10.0
    """Skip a minibatch whose largest probability ratio exceeds this (> 1): a sampling mismatch or an outlier."""
    divergence_kl: float | None = 1.0
    """Stop the whole run (:class:`~course_lib.rl.DivergenceError`) once each step's largest approx KL(old || new)
    per token, averaged over the last 3 steps, exceeds this (> 0), or None (off, for a deliberate experiment).
    Never the KL to the reference, which a run without a KL penalty grows on purpose."""
    trainable: str = "all"
    """``"all"`` parameters; ``"top:N"``: the top N transformer layers, the final norm and the value head;
    ``"lora:R"``: rank-R LoRA adapters on every projection and the value head (see :func:`train_top_layers`)."""
    mixed_precision: str = "no"
    """``"no"`` (fp32) or ``"bf16"``: sampling, every forward pass and the loss under bf16 autocast, weights and
    Adam in fp32 (a GPU); old and new log-probs come from the same autocast, so the first ratio stays 1."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "max_new_tokens", "update_epochs", "num_minibatches"):
            value = getattr(self, name)
            check_int(name, value, 1)
        if self.batch_size % self.num_minibatches:
            raise ValueError(f"num_minibatches: expected a divisor of batch_size ({self.batch_size}), "
                             f"got {self.num_minibatches!r}")
        for name, interval in (("temperature", "> 0"), ("learning_rate", "(0, 1)"), ("kl_coef", ">= 0"),
                               ("gamma", "[0, 1]"), ("gae_lambda", "[0, 1]"), ("clip_eps", "(0, 1)"),
                               ("vf_coef", "> 0"), ("ent_coef", ">= 0"), ("max_grad_norm", "> 0"), ("max_ratio", "> 1")):
            check_float(name, getattr(self, name), interval)
        check_float("value_clip", self.value_clip, "> 0", none_ok=True)
        check_float("target_kl", self.target_kl, "> 0", none_ok=True)
        check_float("divergence_kl", self.divergence_kl, "> 0", none_ok=True)
        check_mixed_precision(self.mixed_precision)
        parse_trainable(self.trainable)

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches


RLHF_PRESETS: dict[str, RLHFConfig] = {
    # The test suite with the tiny model: 2 steps of 4 prompts, 8 tokens; proves the loop runs and updates. The
    # lessons' ci runs use it on SmolLM2 too, where one Adam step on every parameter moves each token by tens of
    # nats: such runs check the code, not learning, so the divergence guard is off (its own tests switch it on).
    "ci": RLHFConfig(steps=2, batch_size=4, max_new_tokens=8, update_epochs=2, learning_rate=1e-3,
                     divergence_kl=None),
    # SmolLM2-135M on a laptop CPU: the top 4 of 30 layers trained, 8 prompts x 24 tokens per step.
    "cpu": RLHFConfig(steps=30, batch_size=8, max_new_tokens=24, learning_rate=2e-4, kl_coef=0.05,
                      trainable="top:4"),
    # SmolLM2-135M on a GPU: every parameter, larger batches, bf16 autocast over fp32 weights.
    "gpu": RLHFConfig(steps=100, batch_size=32, max_new_tokens=48, learning_rate=1e-5, num_minibatches=4,
                      mixed_precision="bf16"),
}


@dataclass
class RLHFResult:
    """What :func:`rlhf_ppo` returns."""

    logger: MetricLogger
    """Every metric per step (names in docs/metrics.md)."""
    reference: nn.Module
    """The frozen reference policy (a copy of the starting LM)."""
    samples: list[tuple[str, str, float]] = field(default_factory=list)
    """(prompt, response, score) of the last step's batch."""
    stopped_early: list[str] = field(default_factory=list)
    """One line per step whose update stopped before its last epoch, with the reason."""
    skipped_minibatches: int = 0
    """Minibatches skipped for a probability ratio above ``max_ratio``."""
    seconds: float = 0.0


def select_trainable(policy: PolicyWithValue, trainable: str) -> list[nn.Parameter]:
    """Set ``requires_grad`` per ``trainable`` ("all", "top:N" or "lora:R") and return the trained parameters.

    ``"top:N"`` trains the value head, the final norm and the top N decoder layers; the embeddings
    (tied to the LM head in SmolLM2) and the lower layers stay frozen (:func:`train_top_layers`).
    """
    return train_top_layers(policy.lm.model, [policy.value_head, *untied_lm_head(policy.lm)], trainable)


CHECKPOINT_KIND = "rlhf_ppo"
"""The ``kind`` of :func:`rlhf_ppo`'s checkpoints (:func:`~course_lib.utils.checkpoint.save_checkpoint`)."""


def _fingerprint(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """A short hash of named tensors: each name, shape and first 4,096 values. LoRA adapters whose B is still
    zero (the model computes exactly what it did without them) are left out, and peft's ``.base_layer`` is
    dropped from the names, so a model with fresh adapters has the fingerprint of the plain one."""
    named = list(named)
    adapted = any("lora_B" in name and bool(t.detach().any()) for name, t in named)
    h = hashlib.sha256()
    with torch.no_grad():
        for name, t in named:
            if "lora_" in name and not adapted:
                continue
            h.update(f"{name.replace('.base_layer', '')}{tuple(t.shape)}".encode())
            h.update(t.detach().flatten()[:4096].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _trainable_names(policy: PolicyWithValue, params: list[nn.Parameter]) -> list[str]:
    """The names in ``policy`` of the parameters the optimiser steps, in its order."""
    names = {id(p): name for name, p in policy.named_parameters()}
    return [names[id(p)] for p in params]


def _frozen(policy: PolicyWithValue, params: list[nn.Parameter]) -> list[tuple[str, torch.Tensor]]:
    trained = {id(p) for p in params}
    return [(name, p) for name, p in policy.named_parameters() if id(p) not in trained]


def _restore(policy: PolicyWithValue, params: list[nn.Parameter], state: dict, resume) -> None:
    """Copy the checkpoint's trained parameters into ``policy`` and check that its frozen rest is the run's."""
    names = _trainable_names(policy, params)
    saved = state["trainable"]
    if names != list(saved) or any(p.shape != saved[n].shape for n, p in zip(names, params)):
        raise ValueError(f"policy: expected the model the run in {resume} trained ({len(saved)} trained tensors), "
                         f"got one whose {len(names)} trained tensors differ in names or shapes; pass the model the "
                         "run started from")
    with torch.no_grad():
        for name, p in zip(names, params):
            p.copy_(saved[name])
    if _fingerprint(_frozen(policy, params)) != state["frozen"]:
        raise ValueError(f"policy: its frozen parameters differ from the run's in {resume} (another model below "
                         f"the trained layers, trainable={state['config']['trainable']!r}); pass the model the run "
                         "started from")


def _step_stats(samples: Samples, scores: torch.Tensor, kl: torch.Tensor, eos_token_id: int) -> dict[str, float]:
    mask = samples.response_mask
    lengths = mask.sum(dim=1).float()  # (B,)
    return {"rlhf/reward": float(scores.mean()), "rlhf/kl": float(sequence_kl(kl, mask).mean()),
            "rlhf/response_length": float(lengths.mean()),
            "rlhf/eos_rate": float(samples.ended(eos_token_id).float().mean()),
            "rlhf/distinct_2": distinct_n(samples.texts, 2)}


def rlhf_ppo(policy: PolicyWithValue, tokenizer, prompts: Sequence[str], reward_fn: RewardFn,
             config: RLHFConfig = RLHF_PRESETS["cpu"], seed: int = 0, reference: nn.Module | None = None,
             gold_fn: RewardFn | None = None, progress: bool = True, live: bool | None = None, *,
             checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
             resume: str | Path | None = None) -> RLHFResult:
    """Fine-tune ``policy`` in place with PPO against ``reward_fn``, KL-anchored to a frozen reference.

    Args:
        policy: a :class:`PolicyWithValue` wrapping the LM to train.
        tokenizer: its tokenizer, padding on the left.
        prompts: formatted training prompts, cycled through in a shuffled order, ``batch_size`` per step.
        reward_fn: ``reward_fn(prompts, responses)`` -> one float per response, e.g. a reward model's score.
        config: an :class:`RLHFConfig`, e.g. ``RLHF_PRESETS["cpu"]``.
        seed: seeds the prompt order and the sampling (:func:`set_seed`); with ``resume``, the saved one is used.
        reference: the frozen reference LM; default a copy of ``policy.lm`` taken now (with ``resume``: before the
            checkpoint's weights are loaded, so ``policy`` must be the model the run started from).
        gold_fn: optional second scorer logged as ``rlhf/gold_score`` (e.g. the simulated annotator
            when ``reward_fn`` is a learned reward model): the over-optimisation check of lesson 15.
        progress, live: passed to :class:`MetricLogger`.
        checkpoint: save the run to this file (atomically: an interrupted save leaves the previous file intact)
            every ``checkpoint_every`` steps, at the end of the call, and on Ctrl-C (the current step finishes, is
            saved, then KeyboardInterrupt is raised). The file holds the config and seed, the number of steps
            done, the parameters the optimiser steps (value head included) by name, a fingerprint of the
            policy's frozen rest and one of the reference, Adam's state, the prompt order (the prompts left in
            the current pass and the shuffling generator's state), Python's, NumPy's and torch's random states,
            and the divergence guard's window of recent approx KLs. Not the frozen weights nor the reference.
        checkpoint_every: also save every this many steps (an int >= 1); None: only at the end and on Ctrl-C.
        resume: continue the run saved in this file: pass the same ``prompts``, ``reward_fn`` and ``config``
            (a different config is refused, naming the fields) and the model the run started from (a fresh
            ``PolicyWithValue`` of it) or ``reference=`` that model; the reference must match the run's. The
            logger then holds the steps after the saved one; ``samples``, ``stopped_early`` and
            ``skipped_minibatches`` cover this call.

    Returns:
        an :class:`RLHFResult`.

    Raises:
        FloatingPointError: a non-finite score, loss or gradient norm, naming the step, epoch and minibatch.
        DivergenceError: the steps' approx KL(old || new), averaged over 3 steps, exceeded ``config.divergence_kl``.
        ValueError: a bad argument; with ``resume``, a checkpoint of another config, reference or model.
        KeyboardInterrupt: Ctrl-C, after the current step finished (and was saved, with ``checkpoint``).
    """
    if not isinstance(policy, PolicyWithValue):
        raise ValueError(f"policy: expected a PolicyWithValue (PolicyWithValue(causal_lm)), got {type(policy).__name__}")
    if not isinstance(config, RLHFConfig):
        raise ValueError(f"config: expected an RLHFConfig (e.g. RLHF_PRESETS['cpu']), got {config!r}")
    prompts = list(prompts)
    if len(prompts) < config.batch_size or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"prompts: expected at least batch_size ({config.batch_size}) non-empty strings, "
                         f"got {len(prompts)}")
    check_checkpoint_args(checkpoint, checkpoint_every, config)
    state = None
    if resume is not None:
        state = resume_state(resume, CHECKPOINT_KIND, config)
        seed = state["seed"]
    set_seed(seed)
    copied = reference is None
    if reference is None:
        reference = copy.deepcopy(policy.lm)
    reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    if checkpoint is not None or state is not None:
        reference_id = _fingerprint(reference.named_parameters())  # the reference is frozen: once per run
    if state is not None and reference_id != state["reference"]:
        raise ValueError(
            f"reference: the {'copy of policy.lm' if copied else 'model passed'} differs from the run's reference "
            f"saved in {resume} (fingerprint {reference_id}, expected {state['reference']}); pass a policy loaded "
            "fresh from the model the run started from (a policy this run already trained is not its own "
            "reference), or that starting model as reference=")
    params = select_trainable(policy, config.trainable)
    optimizer = adamw(params, config.learning_rate)  # Adam: AdamW without weight decay
    rng = np.random.default_rng(seed)
    order: list[int] = []
    guard = DivergenceGuard(config.divergence_kl)
    first = 0
    if state is not None:
        _restore(policy, params, state, resume)
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["order_rng"]
        order = list(state["order"])
        guard.recent = [tuple(r) for r in state["divergence_recent"]]
        set_rng_states(state["rng"])  # last: building the run (LoRA's initialisation) draws from torch's RNG
        first = state["step"]
    if checkpoint is not None:
        frozen_id = state["frozen"] if state is not None else _fingerprint(_frozen(policy, params))

    def save(done: int) -> None:
        """Write the state after ``done`` steps to ``checkpoint`` (atomically)."""
        names = _trainable_names(policy, params)
        save_checkpoint({"config": asdict(config), "seed": seed, "step": done,
                         "trainable": {n: p.detach() for n, p in zip(names, params)}, "frozen": frozen_id,
                         "reference": reference_id, "optimizer": optimizer.state_dict(), "order": list(order),
                         "order_rng": rng.bit_generator.state, "rng": rng_states(),
                         "divergence_recent": list(guard.recent)}, checkpoint, CHECKPOINT_KIND)

    logger = MetricLogger(total=config.steps, desc="RLHF-PPO", live=live, progress=progress,
                          keys_to_plot=["rlhf/reward", "rlhf/gold_score", "rlhf/kl", "losses/entropy",
                                        "rlhf/response_length", "losses/approx_kl"] if gold_fn else
                          ["rlhf/reward", "rlhf/kl", "losses/entropy", "rlhf/response_length", "losses/approx_kl",
                           "losses/clipfrac"])
    result = RLHFResult(logger, reference)
    device = next(policy.parameters()).device
    started = time.perf_counter()
    with DeferredInterrupt("RLHF-PPO", enabled=checkpoint is not None) as interrupt:  # Ctrl-C: finish the step, save, stop
        for step in range(first, config.steps):
            # 1. a batch of prompts (a fresh shuffled pass when the last one is used up), one sampled response each
            while len(order) < config.batch_size:
                order += rng.permutation(len(prompts)).tolist()
            batch_prompts = [prompts[i] for i in order[:config.batch_size]]
            del order[:config.batch_size]
            policy.eval()
            with autocast(device, config.mixed_precision):  # the same precision as the update's forward passes
                samples = sample_responses(policy, tokenizer, batch_prompts, config.max_new_tokens, config.temperature)
            mask = samples.response_mask  # (B, R)

            # 2. score the finished responses
            scores = torch.as_tensor(np.asarray(reward_fn(batch_prompts, samples.texts), dtype=np.float32),
                                     device=device)  # (B,)
            if scores.shape != (config.batch_size,) or not torch.isfinite(scores).all():
                raise FloatingPointError(f"step {step}: reward_fn returned {scores.tolist()}; expected "
                                         f"{config.batch_size} finite floats")

            # 3. old log-probs and values (one forward of the policy), reference log-probs (one of the reference)
            with torch.no_grad(), autocast(device, config.mixed_precision):
                old_logp, old_values, _ = response_outputs(policy, samples, config.temperature)  # (B, R) each, fp32
                ref_logp, _, _ = response_outputs(reference, samples, config.temperature, with_values=False)  # (B, R)

            # 4. per-token rewards: -beta * KL on every response token, the score on the last one
            rewards, kl = token_rewards(scores, old_logp, ref_logp, mask, config.kl_coef)  # (B, R) each
            stats = _step_stats(samples, scores, kl, tokenizer.eos_token_id)
            seq_kl = sequence_kl(kl, mask)  # (B,): the k1 estimate per response, >= 0 in expectation
            # negative beyond sampling noise, and beyond rounding: under bf16 autocast a policy barely off its
            # reference can show a mean of about -1e-3 nats (the sampler and the scoring pass round differently)
            if seq_kl.mean() < min(-3 * seq_kl.std() / config.batch_size ** 0.5, -0.01):
                warnings.warn(f"step {step}: the mean KL to the reference is {stats['rlhf/kl']:.3f} < 0 beyond "
                              "sampling noise; policy and reference log-probs disagree on how the tokens were sampled "
                              "(temperature, masks, top-k)", stacklevel=2)

            # 5. GAE over tokens; the response ends (terminated) at its last real token; whitened advantages
            last = torch.zeros_like(mask)
            last[torch.arange(mask.shape[0]), last_token_index(mask)] = True  # (B, R)
            next_values = torch.cat([old_values[:, 1:], torch.zeros_like(old_values[:, :1])], dim=1)  # (B, R)
            advantages, returns = gae(rewards, old_values, next_values, last, gamma=config.gamma,
                                      lam=config.gae_lambda, mask=mask)  # (B, R) each
            advantages = masked_whiten(advantages, mask)

            # 6. PPO epochs over minibatches of whole responses
            policy.train()
            infos, stop_reason, update_kl = [], None, 0.0
            for epoch in range(config.update_epochs):
                perm = torch.randperm(config.batch_size, device=device)
                for k in range(config.num_minibatches):
                    where = f"step {step}, epoch {epoch}, minibatch {k}"
                    mb = perm[k * config.minibatch_size:(k + 1) * config.minibatch_size]
                    sub = Samples(samples.input_ids[mb], samples.attention_mask[mb], mask[mb], samples.prompt_length,
                                  [samples.texts[i] for i in mb.tolist()])
                    with autocast(device, config.mixed_precision):  # the forward; losses and backward below in fp32
                        logp, values, entropy = response_outputs(policy, sub, config.temperature, with_entropy=True,
                                                                 entropy_grad=config.ent_coef > 0)  # only logged at 0
                    m = mask[mb]
                    ratio = torch.exp(logp - old_logp[mb]).detach()  # (M, R)
                    if float(ratio[m].max()) > config.max_ratio:
                        result.skipped_minibatches += 1
                        skipped = clip_diagnostics(logp.detach(), old_logp[mb], ratio, config.clip_eps, m)
                        update_kl = max(update_kl, skipped["approx_kl"])
                        continue
                    pg_loss, info = clipped_surrogate(logp, old_logp[mb], advantages[mb], config.clip_eps, mask=m)
                    v_loss, _ = value_loss(values, returns[mb], old_values[mb], config.value_clip, mask=m)
                    entropy = masked_mean(entropy, m)
                    loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
                    # backward and a clipped step; a non-finite loss or gradient norm raises FloatingPointError
                    guarded_step(optimizer, loss, params, config.max_grad_norm, where,
                                 parts={"policy": pg_loss, "value": v_loss})
                    infos.append({"losses/policy_loss": pg_loss.item(), "losses/value_loss": v_loss.item(),
                                  "losses/entropy": entropy.item(), "losses/approx_kl": info["approx_kl"],
                                  "losses/clipfrac": info["clipfrac"]})
                    update_kl = max(update_kl, info["approx_kl"])
                    if config.target_kl is not None and info["approx_kl"] > config.target_kl:
                        stop_reason = (f"step {step}: update stopped at epoch {epoch}, minibatch {k}: approx KL "
                                       f"{info['approx_kl']:.3f} > target_kl {config.target_kl}")
                        break
                if stop_reason:
                    result.stopped_early.append(stop_reason)
                    break
            guard.check(update_kl, f"step {step}")  # a run whose updates keep jumping stops here

            # 7. log the step
            if gold_fn is not None:
                stats["rlhf/gold_score"] = float(np.mean(gold_fn(batch_prompts, samples.texts)))
            for name in infos[0] if infos else []:
                stats[name] = float(np.mean([i[name] for i in infos]))
            logger.log(step + 1, stats)
            result.samples = list(zip(batch_prompts, samples.texts, scores.tolist()))

            # then save every checkpoint_every steps and on Ctrl-C (then stop): not a phase of PPO, bookkeeping
            if checkpoint is not None and (interrupt.requested or step + 1 == config.steps
                                           or (checkpoint_every is not None and (step + 1) % checkpoint_every == 0)):
                save(step + 1)
            if interrupt.requested:
                policy.eval()
                logger.close()
                raise KeyboardInterrupt(f"RLHF-PPO stopped after step {step + 1} of {config.steps}"
                                        + (f"; resume=checkpoint continues it from {checkpoint}" if checkpoint else ""))

    if checkpoint is not None and first == config.steps:  # a finished run resumed: nothing trained, still saved
        save(first)
    policy.eval()
    logger.close()
    result.seconds = time.perf_counter() - started
    return result
