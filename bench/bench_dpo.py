"""DPO training: course_lib's `train_dpo` vs TRL's `DPOTrainer`, the reference's cost counted on both sides.

Both train every parameter of SmolLM2-135M-Instruct (fp32, CPU) with the DPO loss (Rafailov et
al. 2023, Eq. 7, beta 0.1) and AdamW (lr 1e-6, no weight decay, constant schedule, gradient clipped
to norm 1) on batches of 8 preference pairs, on the same pairs in the same order, one after the
other in this process with the same torch thread count:

* course_lib: ``train_dpo(model, ...)`` with ``trainable="all"``, one epoch. Phase 0 computes the
  frozen reference's sequence log-probs of every pair once, before training; each step then runs
  the policy alone. Both use ``shared_prompt_logprobs`` when ``pair_logps`` does: a pair's prompt
  goes through the body once, its two responses on its KV cache, and the LM head runs on response
  positions only.
* TRL: ``DPOTrainer`` with its defaults for the reference: a second copy of the model, run
  forward on every batch (``precompute_ref_log_probs=False``), chosen and rejected concatenated
  into one forward of 16 sequences per model; fp32, no gradient checkpointing, sequential
  sampling, no logging, saving or evaluation.

The data are the reward-model benchmark's pairs (``_common.build_pairs``: a topic's
written demonstration as chosen, the next topic's as rejected, prompts in SmolLM2's chat format).

What is compared is the time to train on the same pairs: for TRL the sum of its timed steps; for
course_lib the sum of its timed steps plus the share of its one-off reference pass that belongs to
those steps' pairs (the pass covers every pair the run trains on, warm-up steps included). A step
is timed from the start of one policy forward to the start of the next (a forward pre-hook, the
same for both), and ``train_dpo`` records its own steps the same way; the first ``--warmup``
steps are discarded.

    python bench/bench_dpo.py [--steps 6] [--warmup 1] [--threads N]

On a CPU that other work keeps busy, pass ``--threads 1`` (see bench_reward_model.py).
Needs the `bench` extra (TRL) and the cached model (``course-kit model prepare``).
"""

from __future__ import annotations

import gc
import statistics
import tempfile

import torch

from _common import ForwardClock, build_pairs, course_lib_order, parse_bench_args, quiet_hf_progress

from course_lib.llm.dpo import DPOConfig, train_dpo
from course_lib.llm.models import load_model, load_tokenizer, resolve_model

BATCH, LR, BETA, SEED, MAX_LENGTH = 8, 1e-6, 0.1, 0, 256


def run_course_lib(pairs) -> dict:
    lm, tok = load_model()
    config = DPOConfig(beta=BETA, epochs=1, batch_size=BATCH, learning_rate=LR, trainable="all", max_grad_norm=1.0,
                       reference_batch_size=2 * BATCH)
    result = train_dpo(lm, tok, pairs, config, seed=SEED, progress=False, live=False)
    return {"times": result.step_seconds, "reference": result.reference_seconds,
            "loss": [round(float(x), 4) for x in result.logger.as_arrays("dpo/loss")[1]]}


def run_trl(pairs, steps: int) -> dict:
    from transformers import PrinterCallback
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from course_lib.llm.scale import preference_dataset

    quiet_hf_progress()
    tok = load_tokenizer()
    data = preference_dataset([pairs[i] for i in course_lib_order(len(pairs), SEED)])
    with tempfile.TemporaryDirectory() as out:
        args = TRLDPOConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=LR, weight_decay=0.0,
            lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0, max_length=MAX_LENGTH, beta=BETA,
            precompute_ref_log_probs=False, bf16=False, fp16=False, train_sampling_strategy="sequential",
            logging_strategy="steps", logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
            disable_tqdm=True, dataloader_num_workers=0, use_cpu=True, seed=SEED,
            model_init_kwargs={"dtype": "float32"},
        )
        trainer = DPOTrainer(model=resolve_model(None).location, args=args, train_dataset=data, processing_class=tok)
        trainer.remove_callback(PrinterCallback)
        if len(trainer.train_dataset) != len(pairs):
            raise RuntimeError(f"TRL kept {len(trainer.train_dataset)} of {len(pairs)} pairs")
        clock = ForwardClock(trainer.model)
        trainer.train()
        losses = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
    return {"times": clock.step_times(), "reference": 0.0, "loss": losses, "shapes": clock.shapes}


def main() -> None:
    args = parse_bench_args(__doc__.splitlines()[0], steps=6, warmup=1)
    import transformers
    import trl

    total = args.warmup + args.steps + 1  # TRL's last step only marks where the one before it ends
    pairs = build_pairs(load_tokenizer(), total * BATCH)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; transformers {transformers.__version__}; "
          f"trl {trl.__version__}")
    print(f"SmolLM2-135M-Instruct, all parameters, fp32 CPU; {BATCH} pairs per step, beta {BETA}; "
          f"{args.warmup} warm-up + {args.steps} timed steps each")

    results = {}
    for name, run in (("course_lib", lambda: run_course_lib(pairs)), ("TRL DPOTrainer", lambda: run_trl(pairs, total))):
        r = run()
        gc.collect()
        r["timed"] = r["times"][args.warmup:args.warmup + args.steps]
        results[name] = r
        print(f"{name}: step s " + " ".join(f"{t:.2f}" for t in r["times"]) + f" (first {args.warmup} discarded)"
              + (f"; reference pass over all {len(pairs)} pairs {r['reference']:.2f} s" if r["reference"] else ""))
        print(f"  loss per step {r['loss']}", flush=True)

    course, trl_r = results["course_lib"], results["TRL DPOTrainer"]
    ref_share = course["reference"] * args.steps / total  # the timed steps' pairs' part of the one-off pass
    course_total = sum(course["timed"]) + ref_share
    trl_total = sum(trl_r["timed"])
    print(f"\n{'':<16}{'median s/step':>14}{'total s':>10}")
    print(f"{'course_lib':<16}{statistics.median(course['timed']):>14.2f}{course_total:>10.2f}"
          f"   ({sum(course['timed']):.2f} in steps + {ref_share:.2f} of the reference pass)")
    print(f"{'TRL DPOTrainer':<16}{statistics.median(trl_r['timed']):>14.2f}{trl_total:>10.2f}"
          "   (a reference forward in every step)")
    print(f"ratio TRL / course_lib of the total time for {args.steps} steps of {BATCH} pairs: "
          f"{trl_total / course_total:.2f}x (target >= 1.4)")


if __name__ == "__main__":
    main()
