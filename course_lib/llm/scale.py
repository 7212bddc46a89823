"""The course's data and reward functions through Hugging Face TRL, the road beyond one machine (lesson 16).

``course_lib``'s loops (:func:`~course_lib.llm.reward_model.train_reward_model`,
:func:`~course_lib.llm.ppo.rlhf_ppo`, DPO, GRPO) are written to be read on one machine. To train on many
GPUs, hand the same data and reward functions to TRL's trainers, which run under ``accelerate``
(data parallel, DeepSpeed ZeRO or FSDP, chosen by a config file, not by code):

* preference pairs (:class:`~course_lib.data.preferences.PreferencePair`, lesson 10) already use TRL's
  column names ``prompt`` / ``chosen`` / ``rejected``: :func:`preference_dataset` wraps them in a
  ``datasets.Dataset`` for ``RewardTrainer`` and ``DPOTrainer``, with the course's token ids. TRL appends
  EOS to every text completion that lacks one, which would turn a reply cut at the token limit into a
  finished one; so both trainers train on the course's ids instead (:func:`~course_lib.llm.tokens.reply_ids`:
  a sampled reply's own tokens, EOS only when it finished), which :func:`trl_trainer` puts in place of
  TRL's own tokenisation;
* a course reward function ``reward_fn(prompts, responses) -> floats`` becomes a TRL reward function
  ``f(prompts, completions, **columns) -> list[float]`` with :func:`trl_reward_function`, for
  ``GRPOTrainer``;
* :func:`trl_trainer` builds the trainer with the course's defaults (fp32 weights, bf16 autocast where asked,
  as the course's own loops; no hub, no reporting), so ``course-kit scale`` (:mod:`course_lib.kit.scale`) can
  run it on a laptop for a smoke test, or under ``accelerate launch`` on a cluster.

Needs the ``scale`` extra (``pip install -e ".[scale]"``: TRL, which brings ``datasets``).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

from course_lib.data.preferences import PreferencePair
from course_lib.utils.validation import check_float, check_int

ALGORITHMS = ("reward", "dpo", "grpo")
"""What :func:`trl_trainer` builds: TRL's ``RewardTrainer``, ``DPOTrainer`` or ``GRPOTrainer``."""

RewardFn = Callable[[list[str], list[str]], Sequence[float]]


def _require_trl():
    try:
        import trl  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the test environment has TRL
        raise ImportError("TRL is not installed: install the `scale` extra (pip install -e \".[scale]\")") from exc


def preference_dataset(pairs: Sequence[PreferencePair], tokenizer=None):
    """Preference pairs -> a ``datasets.Dataset`` with TRL's columns ``prompt``, ``chosen``, ``rejected``.

    The prompt is a formatted chat prompt (``chat_prompt``), so TRL treats the rows as plain text and
    applies no chat template of its own. With ``tokenizer``, the rows also carry the course's token ids
    (``course_prompt_ids``, ``course_chosen_ids``, ``course_rejected_ids``: :func:`~course_lib.llm.tokens.reply_ids`,
    so a cut reply has no EOS), which :func:`trl_trainer` trains on.
    """
    from datasets import Dataset

    from course_lib.llm.tokens import encode, reply_ids

    pairs = list(pairs)
    if not pairs or not all(isinstance(p, PreferencePair) for p in pairs):
        raise ValueError(f"pairs: expected a non-empty list of PreferencePair, got "
                         f"{[type(p).__name__ for p in pairs[:3]]!r} ({len(pairs)} items)")
    rows = [{"prompt": str(p.prompt), "chosen": str(p.chosen), "rejected": str(p.rejected)} for p in pairs]
    if tokenizer is not None:
        for row, p in zip(rows, pairs):
            row.update(course_prompt_ids=encode(tokenizer, p.prompt), course_chosen_ids=reply_ids(tokenizer, p.chosen),
                       course_rejected_ids=reply_ids(tokenizer, p.rejected))
    return Dataset.from_list(rows)


def _course_token_ids(example, joined: bool) -> dict:
    """TRL's token columns from the course's: the reply ids after the prompt ids (``joined``: RewardTrainer's
    whole sequences) or beside them (DPOTrainer's ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``)."""
    prompt = example["course_prompt_ids"]
    if joined:
        return {"chosen_ids": prompt + example["course_chosen_ids"],
                "rejected_ids": prompt + example["course_rejected_ids"]}
    return {"prompt_ids": prompt, "chosen_ids": example["course_chosen_ids"],
            "rejected_ids": example["course_rejected_ids"]}


def prompt_dataset(prompts: Sequence[str]):
    """Formatted prompts -> a ``datasets.Dataset`` with TRL's column ``prompt`` (for ``GRPOTrainer``)."""
    from datasets import Dataset

    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"prompts: expected a non-empty list of non-empty str, got {prompts!r:.80}")
    return Dataset.from_list([{"prompt": p} for p in prompts])


def trl_reward_function(reward_fn: RewardFn, name: str = "course_reward") -> Callable[..., list[float]]:
    """A course reward function ``reward_fn(prompts, responses)`` in TRL's form ``f(prompts, completions, **kw)``.

    TRL passes the dataset's other columns as keyword arguments; the course's reward functions do not
    need them. A non-finite or missing score raises here, naming the completion, rather than
    reaching TRL's advantage computation as NaN. ``name`` is what TRL logs the reward as
    (``rewards/<name>/mean``).
    """
    if not callable(reward_fn):
        raise ValueError(f"reward_fn: expected a callable reward_fn(prompts, responses) -> floats, got {reward_fn!r}")

    def reward(prompts, completions, **columns) -> list[float]:
        scores = [float(s) for s in reward_fn(list(prompts), list(completions))]
        if len(scores) != len(completions):
            raise ValueError(f"{name}: returned {len(scores)} scores for {len(completions)} completions")
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
        if bad:
            raise FloatingPointError(f"{name}: score {scores[bad[0]]} for completion {bad[0]} "
                                     f"({completions[bad[0]]!r:.60}); expected finite floats")
        return scores

    reward.__name__ = name
    return reward


def lora_config(rank: int):
    """peft's ``LoraConfig`` for SmolLM2-family models: rank ``rank`` on every projection, alpha = 2 * rank."""
    from peft import LoraConfig

    from course_lib.llm.finetune import LORA_TARGETS

    check_int("rank", rank, 1)
    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(LORA_TARGETS),
                      bias="none")


def trl_trainer(algorithm: str, model, tokenizer, output_dir: str, *, pairs: Sequence[PreferencePair] | None = None,
                prompts: Sequence[str] | None = None, reward_fn: RewardFn | None = None, steps: int = 2,
                batch_size: int = 8, learning_rate: float = 1e-6, beta: float | None = None, max_length: int = 256,
                num_generations: int = 8, max_completion_length: int = 32, bf16: bool = False,
                lora_rank: int | None = None, seed: int = 0, **overrides: Any):
    """One of TRL's trainers on the course's data, ready for ``.train()``.

    Args:
        algorithm: ``"reward"`` (``RewardTrainer``: Bradley-Terry on ``pairs``), ``"dpo"``
            (``DPOTrainer`` on ``pairs``, reference = the starting model) or ``"grpo"`` (``GRPOTrainer`` on
            ``prompts`` scored by ``reward_fn``).
        model: a hub id or folder (TRL loads it; for ``"reward"`` with a one-output score head), or a
            model object (for ``"reward"`` a sequence-classification model, see :func:`reward_model_from`).
        tokenizer: the model's tokenizer.
        output_dir: where TRL writes checkpoints (it saves nothing unless ``overrides`` ask for it).
        steps: optimiser steps (``max_steps``). batch_size: pairs per step and device for ``"reward"`` /
            ``"dpo"``; completions per step and device for ``"grpo"`` (a multiple of ``num_generations``).
        beta: DPO's beta (default 0.1), or GRPO's KL coefficient (default 0, as TRL's: no reference model).
        bf16: mixed precision (a GPU with bf16): TRL's ``bf16=True`` autocast over float32 weights, like the
            course's ``mixed_precision="bf16"`` (bf16 weights would round most updates away); False trains in fp32.
        lora_rank: train rank-r LoRA adapters (:func:`lora_config`) instead of every parameter.
        overrides: any other field of TRL's config (``RewardConfig``, ``DPOConfig``, ``GRPOConfig``).
    """
    _require_trl()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {algorithm!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("max_length", max_length),
                        ("num_generations", num_generations), ("max_completion_length", max_completion_length)):
        check_int(name, value, 1)
    check_float("learning_rate", learning_rate, "(0, 1)")
    common = dict(output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=batch_size,
                  learning_rate=learning_rate, lr_scheduler_type="constant", bf16=bf16, fp16=False,
                  logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[], seed=seed,
                  disable_tqdm=True, dataloader_num_workers=0)
    if isinstance(model, str):
        common["model_init_kwargs"] = {"dtype": "float32"}  # master weights; bf16 only in autocast
    common.update(overrides)
    peft_config = lora_config(lora_rank) if lora_rank is not None else None
    beta = (0.1 if algorithm == "dpo" else 0.0) if beta is None else beta
    check_float("beta", beta, "> 0" if algorithm == "dpo" else ">= 0", note=f"for {algorithm!r}")

    if algorithm in ("reward", "dpo"):
        if pairs is None:
            raise ValueError(f"pairs: expected preference pairs for algorithm {algorithm!r}, got None")
        data = preference_dataset(pairs, tokenizer)
        if algorithm == "reward":
            from trl import RewardConfig, RewardTrainer

            args = RewardConfig(max_length=max_length, center_rewards_coefficient=None, **common)
            # already tokenised (chosen_ids, rejected_ids): TRL skips its own tokenisation and its EOS appending
            data = data.map(_course_token_ids, fn_kwargs={"joined": True})
            return RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                                 peft_config=peft_config)
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(max_length=max_length, beta=beta, **common)
        # TRL loads the reference from the model's path; a model object (no path) gets a frozen copy of itself
        ref_model = copy.deepcopy(model).eval() if not isinstance(model, str) and peft_config is None else None
        trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=data,
                             processing_class=tokenizer, peft_config=peft_config)
        # DPOTrainer always tokenises the text itself (appending EOS to cut replies): put the course's ids in place
        trainer.train_dataset = trainer.train_dataset.map(_course_token_ids, fn_kwargs={"joined": False})
        return trainer

    if prompts is None or reward_fn is None:
        raise ValueError("prompts, reward_fn: expected both for algorithm 'grpo', got "
                         f"{type(prompts).__name__} and {type(reward_fn).__name__}")
    if beta > 0 and not isinstance(model, str) and peft_config is None:
        raise ValueError(f"beta: GRPOTrainer loads its KL reference from the model's path; with a model object "
                         f"expected beta=0 (or a hub id/folder, or lora_rank), got {beta!r}")
    if batch_size % num_generations:
        raise ValueError(f"batch_size: expected a multiple of num_generations ({num_generations}), got {batch_size}")
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(num_generations=num_generations, max_completion_length=max_completion_length, beta=beta,
                      temperature=1.0, **common)
    return GRPOTrainer(model=model, reward_funcs=trl_reward_function(reward_fn), args=args,
                       train_dataset=prompt_dataset(prompts), processing_class=tokenizer, peft_config=peft_config)


def reward_model_from(causal_lm):
    """A one-output sequence-classification model (TRL's reward model) with ``causal_lm``'s body and config.

    The body's weights are shared, the score head is new (zero-initialised). For a hub id or
    folder, pass the string to :func:`trl_trainer` instead: TRL loads it with the head.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    config = causal_lm.config.__class__.from_dict({**causal_lm.config.to_dict(), "num_labels": 1})
    model = AutoModelForSequenceClassification.from_config(config)
    model.model = causal_lm.model  # the same body (embeddings, layers, final norm)
    torch.nn.init.zeros_(model.score.weight)
    return model
