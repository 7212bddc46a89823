"""Supervised fine-tuning (SFT): maximum likelihood on demonstrations, the loss on response tokens only.

The first stage of the standard pipeline (pretrain, SFT, reward model, RL; Ouyang et al. 2022,
Section 3.5): given (prompt, demonstration) pairs, minimise the negative log-likelihood of
the demonstration's tokens given the prompt,

    L(theta) = - sum_i sum_t log pi_theta(y_i,t | x_i, y_i,<t) / (number of response tokens),

a token-level mean over the batch, with the prompt and the padding masked out (the prompt is
given, not learned). It is lesson 7's behaviour cloning with tokens for actions: the expert is
whoever wrote the demonstrations. Append the tokenizer's EOS token to each demonstration
(``with_eos=True``, the default) so the model also learns where a response ends.

Typical use (lesson 9)::

    model, tok = load_model()
    logger = sft(model, tok, prompts, demonstrations, SFT_PRESETS["cpu"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from course_lib.data.preferences import Reply
from course_lib.llm.generation import completion_logprobs
from course_lib.llm.finetune import adamw, check_finetune_config, train_top_layers, untied_lm_head
from course_lib.rl import guarded_step, masked_mean
from course_lib.utils import set_seed
from course_lib.utils.device import autocast
from course_lib.utils.metrics import MetricLogger


@dataclass(frozen=True)
class SFTConfig:
    """Hyper-parameters of :func:`sft`."""

    epochs: int = 3
    """Passes over the demonstrations; usually 1 to 5 (small data overfits fast)."""
    batch_size: int = 8
    """(prompt, demonstration) pairs per step; usually 8 to 128."""
    learning_rate: float = 1e-4
    """AdamW step size in (0, 1); usually 1e-5 to 5e-5 for every parameter, up to 1e-3 for a few layers."""
    weight_decay: float = 0.0
    """AdamW weight decay >= 0."""
    trainable: str = "all"
    """``"all"`` or ``"top:N"``: the final norm and the top N layers (and an untied LM head), see :func:`train_top_layers`."""
    max_grad_norm: float = 1.0
    """Clip the gradient to this global L2 norm, > 0."""
    mixed_precision: str = "no"
    """``"no"`` (fp32) or ``"bf16"``: forward and loss under bf16 autocast, weights and AdamW in fp32 (a GPU)."""

    def __post_init__(self):
        check_finetune_config(self)


SFT_PRESETS: dict[str, SFTConfig] = {
    # The test suite with the tiny model.
    "ci": SFTConfig(epochs=1, batch_size=4, learning_rate=1e-3),
    # SmolLM2-135M on a laptop CPU: the top 4 of 30 layers and the final norm (the head is tied to the embeddings).
    "cpu": SFTConfig(epochs=3, batch_size=8, learning_rate=2e-4, trainable="top:4"),
    # SmolLM2-135M on a GPU: every parameter, bf16 autocast over fp32 weights.
    "gpu": SFTConfig(epochs=3, batch_size=16, learning_rate=2e-5, mixed_precision="bf16"),
}


def sft_loss(model, tokenizer, prompts: Sequence[str], responses: Sequence[str]) -> tuple[torch.Tensor, int]:
    """``(loss, n_tokens)``: the mean negative log-likelihood of the responses' tokens given the prompts.

    Prompt and padding tokens are masked out; each response token counts once (a token-level mean).
    """
    logp, mask = completion_logprobs(model, tokenizer, prompts, responses)  # (B, T-1) each
    return -masked_mean(logp, mask), int(mask.sum())


def sft(model, tokenizer, prompts: Sequence[str], demonstrations: Sequence[str],
        config: SFTConfig = SFT_PRESETS["cpu"], seed: int = 0, with_eos: bool = True, progress: bool = True,
        live: bool | None = None) -> MetricLogger:
    """Fine-tune a causal LM on (prompt, demonstration) pairs, in place.

    Args:
        model: a Hugging Face ``...ForCausalLM`` (``.model`` body, ``.lm_head``).
        tokenizer: its tokenizer. prompts: N formatted prompts. demonstrations: N target responses.
        config: an :class:`SFTConfig`, e.g. ``SFT_PRESETS["cpu"]``.
        seed: seeds the shuffling (:func:`set_seed`).
        with_eos: append ``tokenizer.eos_token`` to each text demonstration, so that stopping is learned too;
            a demonstration that is a sampled :class:`~course_lib.data.preferences.Reply` is trained on its own
            ids (EOS included when it finished).
        progress, live: passed to :class:`MetricLogger`.

    Returns:
        a :class:`MetricLogger` with ``sft/loss`` (per step, the batch's token-mean NLL in nats).

    Raises:
        ValueError: a bad argument (named in the message).
        FloatingPointError: a non-finite loss or gradient norm, naming the epoch and step.
    """
    if not isinstance(config, SFTConfig):
        raise ValueError(f"config: expected an SFTConfig (e.g. SFT_PRESETS['cpu']), got {config!r:.80}")
    if isinstance(prompts, str) or isinstance(demonstrations, str):
        raise ValueError("prompts, demonstrations: expected lists of strings, got a single string")
    prompts, demonstrations = list(prompts), list(demonstrations)
    if not prompts or len(prompts) != len(demonstrations):
        raise ValueError(f"demonstrations: expected one per prompt ({len(prompts)} prompts, at least 1), "
                         f"got {len(demonstrations)}")
    if not all(isinstance(d, str) and d.strip() for d in demonstrations):
        raise ValueError("demonstrations: expected non-empty strings")
    if with_eos:  # a sampled Reply keeps its own ids (EOS included when it finished)
        demonstrations = [d if isinstance(d, Reply) else d + tokenizer.eos_token for d in demonstrations]
    set_seed(seed)
    params = train_top_layers(model.model, untied_lm_head(model), config.trainable)
    optimizer = adamw(params, config.learning_rate, config.weight_decay)
    steps_per_epoch = -(-len(prompts) // config.batch_size)
    logger = MetricLogger(total=config.epochs * steps_per_epoch, desc="SFT", live=live, progress=progress,
                          keys_to_plot=["sft/loss"])
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    step = 0
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(prompts), generator=generator).tolist()
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size]
            with autocast(device, config.mixed_precision):  # forward and loss; backward and step on fp32 weights
                loss, _ = sft_loss(model, tokenizer, [prompts[i] for i in rows], [demonstrations[i] for i in rows])
            guarded_step(optimizer, loss, params, config.max_grad_norm, f"epoch {epoch}, step {step}")
            step += 1
            logger.log(step, {"sft/loss": loss.item()})
    model.eval()
    logger.close()
    return logger
