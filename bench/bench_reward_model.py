"""One reward-model training step: course_lib's `train_reward_model` vs TRL's `RewardTrainer`, and a bare step.

All three train every parameter of SmolLM2-135M-Instruct (fp32, CPU) plus a one-output linear
head with the Bradley-Terry loss and AdamW (lr 1e-5, no weight decay, constant schedule), on
batches of 8 preference pairs, i.e. one forward over 16 sequences per step, max length 128
(no sequence comes close, so neither library cuts or drops anything). They run one after the
other in this process with the same torch thread count, on the same batches in the same order:

* course_lib: ``train_reward_model(RewardModel(lm), ...)`` with ``trainable="all"``, one epoch,
  gradient clipped to norm 1 (its own loop: tokenise the batch, forward, loss, checks, clip,
  AdamW, which is torch's fused kernel on the CPU from torch 2.4). Its forward runs each pair's
  prompt through the body once and both responses on the prompt's cached keys and values
  (``score_texts``), so it computes about two thirds of the tokens the others do, with the same
  scores and gradients.
* TRL: ``RewardTrainer`` on ``AutoModelForSequenceClassification`` (``num_labels=1``) loaded
  from the same weights, fp32 (``bf16=False``), no gradient (activation) checkpointing, gradient
  clipped to norm 1, sequential sampling, no logging, saving or evaluation, ``report_to=[]``,
  ``dataloader_num_workers=0``, ``use_cpu=True``, its default optimiser (transformers' fused
  AdamW). The dataset is given in course_lib's batch order, so step k sees the same 8 pairs.
  (TRL reads the score at the last non-pad token; SmolLM2's pad token is its end-of-turn token,
  so that is one position before course_lib's. The cost is the same.)
* bare: the floor of the plain encoding. A hand-written loop on batches tokenised in advance:
  one forward of the body over the 16 full sequences, the score at the last token, ``-logsigmoid(r_c - r_r).mean()``,
  backward, ``torch.optim.AdamW(fused=True)`` step; no clipping, no checks, no bookkeeping.

The data: 8 pairs per step, cycling through the 32 topics of ``course_lib.data.prompts`` in both
phrasings; the prompt is the user message formatted with ``chat_prompt`` (SmolLM2's chat
template with its default system turn, about 40 tokens); ``chosen`` is the topic's reply from
``course_lib.data.demonstrations`` and ``rejected`` the next topic's reply (an off-topic
answer), each closed with the end-of-turn token (about 20 tokens). TRL tokenises prompt +
response as one string, course_lib each part on its own; the script checks that every step
gets the same number of real tokens in TRL and the bare step, prints the padded shapes, and the
share of those tokens course_lib runs through the body.

A library's step is timed from the start of one forward call to the start of the next (a
forward pre-hook on the model, the same for both), so it covers everything its loop does
between two batches. The first ``--warmup`` steps are discarded; printed are the per-step
times, their medians, the ratio TRL / course_lib, and each one's median against the bare
step's (bare / X: the share of the step that is the raw forward, backward and AdamW).

    python bench/bench_reward_model.py [--steps 6] [--warmup 2] [--threads N]

On a CPU that other work keeps busy, pass ``--threads 1``: torch's OpenMP threads wait for
each other by spinning, and when a core is taken from one of them every step gets several
times slower, for all three alike.

Needs the `bench` extra (``pip install -e ".[bench]"``: trl 1.13.0) and the cached model
(``course-kit model prepare``).
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import tempfile
import time

import torch

from _common import ForwardClock, build_pairs, course_lib_order, parse_bench_args, quiet_hf_progress

from course_lib.data.preferences import PreferencePair
from course_lib.llm.models import load_model, load_tokenizer, resolve_model
from course_lib.llm.reward_model import RewardConfig, RewardModel, encode_pairs, train_reward_model

BATCH, MAX_LENGTH, LR, SEED = 8, 128, 1e-5, 0


def run_course_lib(pairs: list[PreferencePair]) -> dict:
    lm, tok = load_model()
    model = RewardModel(lm)
    clock = ForwardClock(model.body, calls_per_step=2)
    config = RewardConfig(epochs=1, batch_size=BATCH, learning_rate=LR, weight_decay=0.0, max_length=MAX_LENGTH,
                          trainable="all", max_grad_norm=1.0)
    train_reward_model(model, tok, pairs, config=config, seed=SEED, progress=False, live=False)
    return {"times": clock.step_times(), "shapes": clock.shapes, "tokens": clock.tokens, "threads": clock.threads}


def run_trl(pairs: list[PreferencePair], steps: int) -> dict:
    from transformers import PrinterCallback
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    from course_lib.llm.scale import preference_dataset

    quiet_hf_progress()
    tok = load_tokenizer()
    data = preference_dataset([pairs[i] for i in course_lib_order(len(pairs), SEED)])
    fields = {f.name for f in dataclasses.fields(TRLRewardConfig)}  # transformers 5.x renamed the flag
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    with tempfile.TemporaryDirectory() as out:
        args = TRLRewardConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=LR, weight_decay=0.0,
            lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0, max_length=MAX_LENGTH,
            center_rewards_coefficient=None, bf16=False, fp16=False, **{checkpointing: False},
            train_sampling_strategy="sequential", logging_strategy="no", save_strategy="no", eval_strategy="no",
            report_to=[], disable_tqdm=True, dataloader_num_workers=0, use_cpu=True, seed=SEED,
            model_init_kwargs={"dtype": "float32"},
        )
        trainer = RewardTrainer(model=resolve_model(None).location, args=args, train_dataset=data,
                                processing_class=tok)
        trainer.remove_callback(PrinterCallback)  # its end-of-training summary line
        if len(trainer.train_dataset) != len(pairs):
            raise RuntimeError(f"TRL kept {len(trainer.train_dataset)} of {len(pairs)} pairs (max_length filter)")
        model = trainer.model
        if getattr(model, f"is_{checkpointing}"):
            raise RuntimeError("TRL's model has gradient checkpointing on; expected it off")
        dtypes = {p.dtype for p in model.parameters()}
        clock = ForwardClock(model)
        trainer.train()
        optimizer = type(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer")
                         else trainer.optimizer).__name__
        fused = any(g.get("fused") for g in trainer.optimizer.param_groups)
    return {"times": clock.step_times(), "shapes": clock.shapes, "tokens": clock.tokens, "threads": clock.threads,
            "optimizer": f"{optimizer}{' (fused)' if fused else ''}", "dtypes": dtypes}


def run_bare(pairs: list[PreferencePair], steps: int) -> dict:
    lm, tok = load_model()
    order = course_lib_order(len(pairs), SEED)
    batches = [encode_pairs(tok, [pairs[i] for i in order[s * BATCH:(s + 1) * BATCH]], MAX_LENGTH)
               for s in range(steps)]  # left-padded (2B, T) ids and masks, tokenised before timing
    body = lm.model
    head = torch.nn.Linear(lm.config.hidden_size, 1)
    params = [*body.parameters(), *head.parameters()]
    for p in params:
        p.requires_grad_(True)
    body.train()
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.0, fused=True)
    times = []
    for input_ids, attention_mask in batches:
        start = time.perf_counter()
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        hidden = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
        scores = head(hidden[:, -1]).squeeze(-1)  # (2B,): left padding puts every last token at T - 1
        loss = -torch.nn.functional.logsigmoid(scores[:BATCH] - scores[BATCH:]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"times": times[:-1], "shapes": [tuple(m.shape) for _, m in batches],
            "tokens": [int(m.sum()) for _, m in batches], "threads": {torch.get_num_threads()}}


def main() -> None:
    args = parse_bench_args(__doc__.splitlines()[0], steps=6, warmup=2)
    import transformers
    import trl

    total = args.warmup + args.steps + 1  # the last step only marks where the one before it ends
    tok = load_tokenizer()
    pairs = build_pairs(tok, total * BATCH)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; transformers {transformers.__version__}; "
          f"trl {trl.__version__}")
    print(f"SmolLM2-135M-Instruct, all parameters, fp32 CPU; {BATCH} pairs (16 sequences) per step, "
          f"max length {MAX_LENGTH}; {args.warmup} warm-up + {args.steps} timed steps each")

    results = {}
    for name, run in (("course_lib", lambda: run_course_lib(pairs)),
                      ("TRL RewardTrainer", lambda: run_trl(pairs, total)),
                      ("bare step", lambda: run_bare(pairs, total))):
        r = run()
        gc.collect()
        r["timed"] = r["times"][args.warmup:]
        results[name] = r
        extra = f"; optimizer {r['optimizer']}, dtypes {sorted(map(str, r['dtypes']))}" if "optimizer" in r else ""
        print(f"{name}: threads {sorted(r['threads'])}{extra}")
        print(f"  padded shapes {r['shapes'][:total]}")
        print(f"  real tokens   {r['tokens'][:total]}")
        print("  step s        " + " ".join(f"{t:.2f}" for t in r["times"]) + f"  (first {args.warmup} discarded)",
              flush=True)

    reference = results["bare step"]["tokens"][:total]
    if results["TRL RewardTrainer"]["tokens"][:total] != reference:
        print(f"WARNING: TRL saw other token counts than the bare step: "
              f"{results['TRL RewardTrainer']['tokens'][:total]} vs {reference}")
    share = sum(results["course_lib"]["tokens"][:total]) / sum(reference)
    print(f"course_lib runs {share:.0%} of the bare step's tokens through the body (each prompt once per pair)")
    medians = {name: statistics.median(r["timed"]) for name, r in results.items()}
    bare = medians["bare step"]
    print(f"\n{'':<20}{'median s/step':>14}{'bare / this':>13}")
    for name, m in medians.items():
        print(f"{name:<20}{m:>14.2f}{bare / m:>12.0%}")
    ratio = medians["TRL RewardTrainer"] / medians["course_lib"]
    print(f"ratio TRL / course_lib of the median step time: {ratio:.2f}x (target >= 1.3)")


if __name__ == "__main__":
    main()
