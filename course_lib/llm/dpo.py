"""Direct preference optimisation (DPO): learn from preference pairs without a reward model or sampling (lesson 12).

Rafailov et al. (2023) start from RLHF's objective, max E[r(x, y)] - beta KL(pi || pi_ref), whose
optimum is pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x) (their Eq. 4). Solved for the reward,
r(x, y) = beta log pi*(y|x) / pi_ref(y|x) + beta log Z(x) (Eq. 5); put into the Bradley-Terry model
of the preferences, Z(x) cancels, and the reward model's loss becomes a loss on the policy itself
(Eq. 7, :func:`course_lib.rl.dpo_loss`):

    loss = -E[ log sigmoid( beta * (log pi(y_w|x) - log pi_ref(y_w|x)) - beta * (log pi(y_l|x) - log pi_ref(y_l|x)) ) ]

What that needs per pair (x, y_w, y_l): four sequence log-probs, each a sum over the response's
tokens only (prompt and padding masked). The reference never changes, so its two log-probs per pair
are computed once, before training (phase 0 of :func:`train_dpo`), and no reference model is kept
in memory while training. Per step:

1. a minibatch of pairs (a fresh shuffled order each epoch);
2. the policy's sequence log-probs log pi(y_w|x), log pi(y_l|x), each (B,): each pair's prompt runs
   once, its two responses on the prompt's KV cache (:func:`pair_logps`);
3. the DPO loss against the stored reference log-probs, with its diagnostics (implicit rewards
   of chosen and rejected, their margin, the share of pairs ordered like the labels);
4. backward and one clipped optimiser step (a non-finite loss or gradient norm raises);
5. log.

With ``checkpoint=`` the run saves itself (atomically) every ``checkpoint_every`` steps, at its end and on
Ctrl-C; ``resume=`` goes on from such a file exactly as the uninterrupted run would have.

Deliberate simplifications: no learning-rate schedule, no label smoothing.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from course_lib.data.preferences import PreferencePair
from course_lib.llm.feedback import model_fingerprint
from course_lib.llm.generation import shared_prompt_logprobs
from course_lib.llm.finetune import adamw, check_finetune_config, train_top_layers, untied_lm_head
from course_lib.llm.tokens import as_reply
from course_lib.rl import dpo_loss, guarded_step, masked_sum
from course_lib.utils import set_seed
from course_lib.utils.checkpoint import (DeferredInterrupt, check_checkpoint_args, check_same_as_saved, resume_state,
                                         rng_states, save_checkpoint, set_rng_states)
from course_lib.utils.device import autocast
from course_lib.utils.metrics import MetricLogger
from course_lib.utils.validation import check_float, check_int


@dataclass(frozen=True)
class DPOConfig:
    """Hyper-parameters of :func:`train_dpo`."""

    beta: float = 0.1
    """beta > 0: the KL anchor's strength, also the implicit reward's scale; usually 0.05 to 0.5."""
    epochs: int = 1
    """Passes over the training pairs; usually 1 to 3 (DPO overfits small data fast)."""
    batch_size: int = 8
    """Preference pairs per step (2 x batch_size texts per forward pass); usually 8 to 64."""
    learning_rate: float = 5e-7
    """AdamW step size in (0, 1); usually 5e-7 to 5e-6 for every parameter, up to about 1e-4 for a few layers."""
    weight_decay: float = 0.0
    """AdamW weight decay >= 0."""
    trainable: str = "all"
    """``"all"``, ``"top:N"`` (the final norm and the top N layers) or ``"lora:R"``, see :func:`train_top_layers`."""
    max_grad_norm: float = 1.0
    """Clip the gradient to this global L2 norm, > 0; usually 0.5 to 10."""
    reference_batch_size: int = 16
    """Pairs per forward pass of the reference in phase 0 (no gradient, so larger than batch_size is fine), >= 1."""
    mixed_precision: str = "no"
    """``"no"`` (fp32) or ``"bf16"``: forward passes (the reference's too) and loss under bf16 autocast, weights
    and AdamW in fp32 (a GPU)."""

    def __post_init__(self):
        check_finetune_config(self, ("epochs", "batch_size", "reference_batch_size"))
        check_float("beta", self.beta, "> 0")


DPO_PRESETS: dict[str, DPOConfig] = {
    # The test suite with the tiny model: one epoch of 4 pairs per step; proves the loop runs and updates.
    "ci": DPOConfig(beta=0.1, epochs=1, batch_size=4, learning_rate=1e-3),
    # SmolLM2-135M on a laptop CPU: the top 4 of 30 layers and the final norm, one pass over lesson 10's 320 pairs.
    "cpu": DPOConfig(beta=0.1, epochs=1, batch_size=8, learning_rate=1e-4, trainable="top:4"),
    # SmolLM2-135M on a GPU: every parameter, two passes, bf16 autocast over fp32 weights.
    "gpu": DPOConfig(beta=0.1, epochs=2, batch_size=16, learning_rate=1e-6, mixed_precision="bf16"),
}


@dataclass
class DPOResult:
    """What :func:`train_dpo` returns."""

    logger: MetricLogger
    """Per step: ``dpo/loss``, ``dpo/accuracy``, ``dpo/reward_margin``, ``dpo/reward_chosen``, ``dpo/reward_rejected``."""
    ref_logps: tuple[torch.Tensor, torch.Tensor]
    """(N,) and (N,): the reference's sequence log-probs of every pair's chosen and rejected response, on the CPU;
    pass them to the next run on the same pairs and reference to skip phase 0."""
    seconds: float = 0.0
    """Wall time of the whole call, the reference pass included."""
    reference_seconds: float = 0.0
    """Wall time of phase 0 alone (0 when ``ref_logps`` were given)."""
    step_seconds: list[float] = field(default_factory=list)
    """Wall time of each training step (phases 1 to 5)."""


def _check_pairs(pairs) -> list[PreferencePair]:
    if isinstance(pairs, (str, PreferencePair)) or not pairs:
        raise ValueError(f"pairs: expected a non-empty list of PreferencePair, got {pairs!r:.80}")
    pairs = list(pairs)
    for i, p in enumerate(pairs):
        if not isinstance(p, PreferencePair):
            raise ValueError(f"pairs[{i}]: expected a PreferencePair(prompt, chosen, rejected), got {type(p).__name__}")
    return pairs


def pair_logps(model, tokenizer, pairs: Sequence[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp_chosen, logp_rejected)``, each (B,): log pi(y|x) summed over each response's tokens.

    The pair's prompt goes through the model once, its two responses on its KV cache, and the LM
    head runs on response positions only (:func:`~course_lib.llm.generation.shared_prompt_logprobs`,
    equal to encoding each prompt + response whole, :func:`~course_lib.llm.generation.completion_logprobs`;
    tested). Only response tokens are summed: the prompt's tokens and the padding never enter. A response is
    its token ids (:func:`~course_lib.llm.tokens.as_reply`): a finished one ends with EOS, so log pi(EOS) is
    part of its log-prob and DPO can learn when to stop; a cut one has no EOS.
    Differentiable; wrap in ``torch.no_grad()`` for the reference.
    """
    pairs = _check_pairs(pairs)
    B = len(pairs)
    prompts = [p.prompt for p in pairs] * 2  # (2B,)
    responses = [as_reply(tokenizer, r) for r in [p.chosen for p in pairs] + [p.rejected for p in pairs]]  # (2B,)
    logp, mask = shared_prompt_logprobs(model, tokenizer, prompts, responses)  # (2B, R) each
    seq = masked_sum(logp, mask, dim=-1)  # (2B,): sum over response tokens only
    return seq[:B], seq[B:]


@torch.no_grad()
def reference_logps(reference, tokenizer, pairs: Sequence[PreferencePair], batch_size: int = 16
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ``(logp_chosen, logp_rejected)`` for every pair, each (N,) on the CPU, in batches, no gradient.

    Computed once before training: pi_ref is frozen, so these numbers never change.
    """
    pairs = _check_pairs(pairs)
    check_int("batch_size", batch_size, 1)
    was_training = reference.training
    reference.eval()
    chosen, rejected = [], []
    for start in range(0, len(pairs), batch_size):
        c, r = pair_logps(reference, tokenizer, pairs[start:start + batch_size])  # (b,) each
        chosen.append(c.float().cpu())
        rejected.append(r.float().cpu())
    reference.train(was_training)
    return torch.cat(chosen), torch.cat(rejected)


@torch.no_grad()
def preference_metrics(model, tokenizer, pairs: Sequence[PreferencePair], ref_logps, beta: float,
                       batch_size: int = 16) -> dict[str, float]:
    """The DPO loss and its diagnostics of ``model`` on ``pairs`` (e.g. held-out pairs), without training.

    Args:
        ref_logps: ``(ref_chosen, ref_rejected)``, each (N,), from :func:`reference_logps` on the same pairs.

    Returns:
        ``{"loss", "accuracy", "reward_margin", "reward_chosen", "reward_rejected"}``, means over all N pairs.
    """
    pairs = _check_pairs(pairs)
    ref_chosen, ref_rejected = ref_logps
    if ref_chosen.shape != (len(pairs),) or ref_rejected.shape != (len(pairs),):
        raise ValueError(f"ref_logps: expected two tensors of shape ({len(pairs)},), one entry per pair, "
                         f"got {tuple(ref_chosen.shape)} and {tuple(ref_rejected.shape)}")
    policy_chosen, policy_rejected = reference_logps(model, tokenizer, pairs, batch_size)  # (N,) each
    loss, info = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
    return {"loss": float(loss), **{k: info[k] for k in ("accuracy", "reward_margin", "reward_chosen",
                                                         "reward_rejected")}}


def pairs_digest(pairs: Sequence[PreferencePair]) -> str:
    """A short hash of the pairs in their order (prompts, responses, and a sampled reply's token ids): a resumed run
    must train on the very pairs the checkpoint's run did."""
    h = hashlib.sha256()
    for p in pairs:
        for text in (p.prompt, p.chosen, p.rejected):
            h.update(repr((str(text), getattr(text, "ids", None))).encode())
    return h.hexdigest()[:16]


def check_reference_logps(ref_logps, source: str) -> None:
    """Raise a ValueError naming the pairs whose reference log-probs are NaN or infinite.

    Such a number makes every loss it enters NaN, which no learning rate fixes: the input is at fault.
    """
    ref_chosen, ref_rejected = ref_logps
    bad = (~torch.isfinite(ref_chosen) | ~torch.isfinite(ref_rejected)).nonzero().flatten().tolist()
    if bad:
        shown = ", ".join(f"{i} (chosen {ref_chosen[i].item()}, rejected {ref_rejected[i].item()})" for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(
            f"{source}: the reference log-probs are not finite for {len(bad)} of {len(ref_chosen)} pairs: "
            f"pairs {shown}{more}. This is a problem of the input, not of the learning rate: look at those pairs' "
            "responses (a token the reference gives probability 0), at the reference's weights (NaN or inf in "
            "them) and at its precision (fp16 or bf16 logits that overflowed: compute the reference in fp32), "
            "or at where the given ref_logps came from")


def train_dpo(model, tokenizer, pairs: Sequence[PreferencePair], config: DPOConfig = DPO_PRESETS["cpu"],
              seed: int = 0, reference=None, ref_logps=None, progress: bool = True,
              live: bool | None = None, checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
              resume: str | Path | None = None) -> DPOResult:
    """Fine-tune a causal LM in place with DPO on preference pairs.

    Args:
        model: a Hugging Face ``...ForCausalLM`` (``.model`` body, ``.lm_head``), the policy to train. With
            ``resume``: the model the saved run started from, loaded afresh (not the one an interrupted call
            trained in place); checked by its fingerprint.
        tokenizer: its tokenizer, padding on the left.
        pairs: :class:`~course_lib.data.preferences.PreferencePair` s (prompt already chat-formatted).
        config: a :class:`DPOConfig`, e.g. ``DPO_PRESETS["cpu"]``.
        seed: seeds the order of the pairs (:func:`set_seed`); ignored with ``resume`` (the file holds the random
            states).
        reference: the frozen reference pi_ref for phase 0; default ``model`` itself before any update
            (DPO's usual reference: the starting policy), so no copy is needed. Not used with ``resume``.
        ref_logps: ``(ref_chosen, ref_rejected)``, each (N,), from an earlier call on the same pairs and
            reference (``result.ref_logps``): phase 0 is skipped. With ``resume`` the file's are used (given ones
            must equal them).
        progress, live: passed to :class:`MetricLogger`.
        checkpoint: the file to save the run to (atomically: a save cut short leaves the previous file), every
            ``checkpoint_every`` steps, at the end of the call, and on Ctrl-C (the current step finishes, is saved,
            then KeyboardInterrupt is raised). It holds the trained parameters (those the optimiser steps), the
            optimiser's state, the config, the step, the epoch, that epoch's order of the pairs and the position
            in it, the order's generator and every global random state, the reference log-probs of every pair,
            the starting model's fingerprint, a hash of the pairs and the metrics logged so far.
        checkpoint_every: save every this many steps (an int >= 1); None: only at the end and on Ctrl-C.
        resume: go on from a file written with ``checkpoint``, with the same ``config`` and ``pairs`` and the
            starting model: the result equals that of the run never stopped. ``result.logger`` holds the whole
            run's metrics.

    Returns:
        a :class:`DPOResult`.

    Raises:
        ValueError: a bad argument (named in the message); reference log-probs that are not finite (naming the
            pairs); with ``resume``, a checkpoint of another config, other pairs or another starting model.
        FloatingPointError: a non-finite loss or gradient norm, naming the epoch and step.
        KeyboardInterrupt: after Ctrl-C, once the step is finished and saved to ``checkpoint``.
    """
    if not isinstance(config, DPOConfig):
        raise ValueError(f"config: expected a DPOConfig (e.g. DPO_PRESETS['cpu']), got {config!r:.80}")
    pairs = _check_pairs(pairs)
    check_checkpoint_args(checkpoint, checkpoint_every, config)
    state = None
    identity = {}  # what a resumed run must share with the saved one
    if checkpoint is not None or resume is not None:
        identity = {"model": model_fingerprint(model), "pairs": pairs_digest(pairs)}
    if resume is not None:
        state = resume_state(resume, "train_dpo", config)
        check_same_as_saved("pairs", identity["pairs"], state["pairs"], resume,
                            f"the {state['num_pairs']} pairs, in the same order, that", f"{len(pairs)} pairs given")
        check_same_as_saved("model", identity["model"], state["model"], resume, "the starting model",
                            "load it again (the call that saved the file trained its model in place)")
        if ref_logps is not None and not all(torch.equal(a.cpu(), b) for a, b in zip(ref_logps, state["ref_logps"])):
            raise ValueError(f"ref_logps: expected those saved in {str(resume)!r} (or None), got other ones")
        ref_logps = state["ref_logps"]
    started = time.perf_counter()
    set_seed(seed)

    # 0. the reference's sequence log-probs of every pair, once, before any update (pi_ref never changes),
    # in the policy's precision, so that the loss starts at ln 2
    device = next(model.parameters()).device
    reference_seconds = 0.0
    source = "ref_logps"
    if ref_logps is None:
        source = "reference" if reference is not None else "model (the reference, before any update)"
        with autocast(device, config.mixed_precision):
            ref_logps = reference_logps(model if reference is None else reference, tokenizer, pairs,
                                        config.reference_batch_size)  # (N,) each
        reference_seconds = time.perf_counter() - started
    ref_chosen, ref_rejected = ref_logps
    if ref_chosen.shape != (len(pairs),) or ref_rejected.shape != (len(pairs),):
        raise ValueError(f"ref_logps: expected two tensors of shape ({len(pairs)},), one entry per pair, "
                         f"got {tuple(ref_chosen.shape)} and {tuple(ref_rejected.shape)}")
    check_reference_logps(ref_logps, source)

    params = train_top_layers(model.model, untied_lm_head(model), config.trainable)
    optimizer = adamw(params, config.learning_rate, config.weight_decay)
    steps_per_epoch = -(-len(pairs) // config.batch_size)
    logger = MetricLogger(total=config.epochs * steps_per_epoch, desc="DPO", live=live, progress=progress,
                          keys_to_plot=["dpo/loss", "dpo/accuracy", "dpo/reward_margin", "dpo/reward_chosen",
                                        "dpo/reward_rejected"])
    result = DPOResult(logger, (ref_chosen, ref_rejected), reference_seconds=reference_seconds)
    generator = torch.Generator().manual_seed(seed)
    step, first_epoch, position, order = 0, 0, 0, None
    names = {id(p): name for name, p in model.named_parameters()}
    trained = {names[id(p)]: p for p in params}
    if state is not None:  # everything a straight run would hold after the saved step
        if set(state["params"]) != set(trained):
            raise ValueError(f"resume: {str(resume)!r} holds the parameters {sorted(state['params'])[:3]}..., "
                             f"this model trains {sorted(trained)[:3]}...")
        with torch.no_grad():
            for name, p in trained.items():
                p.copy_(state["params"][name])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, first_epoch, position, order = state["step"], state["epoch"], state["position"], state["order"]
        if position >= len(pairs):  # the saved step ended its epoch
            first_epoch, position, order = first_epoch + 1, 0, None
        logger.history = {k: list(v) for k, v in state["history"].items()}
        set_rng_states(state["rng"])

    def save(epoch: int, order: torch.Tensor | None, position: int) -> None:
        save_checkpoint({"config": asdict(config), "step": step, "epoch": epoch, "order": order,
                         "position": position, "generator": generator.get_state(),
                         "params": {name: p.detach() for name, p in trained.items()},
                         "optimizer": optimizer.state_dict(), "rng": rng_states(),
                         "ref_logps": (ref_chosen, ref_rejected), **identity, "num_pairs": len(pairs),
                         "history": logger.history}, checkpoint, "train_dpo")

    saved_step = None
    model.train()
    with DeferredInterrupt("DPO", enabled=checkpoint is not None) as interrupt:
        for epoch in range(first_epoch, config.epochs):
            if order is None:
                order = torch.randperm(len(pairs), generator=generator)
            for start in range(position, len(pairs), config.batch_size):
                t0 = time.perf_counter()
                # 1. a minibatch of B pairs
                rows = order[start:start + config.batch_size]  # (B,)
                batch = [pairs[i] for i in rows.tolist()]

                with autocast(device, config.mixed_precision):  # phases 2 and 3; backward and step on fp32 weights
                    # 2. policy forward: sequence log-probs of the chosen and the rejected responses
                    logp_chosen, logp_rejected = pair_logps(model, tokenizer, batch)  # (B,) each, fp32, with grad

                    # 3. the DPO loss (Rafailov et al. 2023, Eq. 7) against the stored reference log-probs
                    loss, info = dpo_loss(logp_chosen, logp_rejected, ref_chosen[rows].to(device),
                                          ref_rejected[rows].to(device), config.beta)

                # 4. backward and a clipped step; a non-finite loss or gradient norm raises FloatingPointError
                guarded_step(optimizer, loss, params, config.max_grad_norm, f"epoch {epoch}, step {step}")

                # 5. log, and save when due
                step += 1
                result.step_seconds.append(time.perf_counter() - t0)
                logger.log(step, {"dpo/loss": loss.item(), "dpo/accuracy": info["accuracy"],
                                  "dpo/reward_margin": info["reward_margin"],
                                  "dpo/reward_chosen": info["reward_chosen"],
                                  "dpo/reward_rejected": info["reward_rejected"]})
                interrupted = interrupt.requested
                if interrupted or (checkpoint_every is not None and step % checkpoint_every == 0):
                    save(epoch, order, start + config.batch_size)
                    saved_step = step
                if interrupted:
                    model.eval()
                    logger.close()
                    total = config.epochs * steps_per_epoch
                    raise KeyboardInterrupt(f"DPO: interrupted after {step} of {total} steps, saved to "
                                            f"{str(checkpoint)!r}; go on with resume={str(checkpoint)!r}")
            order, position = None, 0
        if checkpoint is not None and saved_step != step:
            save(config.epochs - 1, None, len(pairs))  # the run is over: no order left
    model.eval()
    logger.close()
    result.seconds = time.perf_counter() - started
    return result
