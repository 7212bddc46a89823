"""``course-kit scale``: the course's data and rewards through TRL's trainers, on one CPU or under accelerate.

One machine, a smoke test on the tiny model (seconds)::

    course-kit scale dpo --tiny --steps 2

Many GPUs, the same command under ``accelerate launch`` (one process per GPU; the config file picks
data parallel, DeepSpeed ZeRO-2 or FSDP)::

    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m course_lib.kit.scale \\
        dpo --model HuggingFaceTB/SmolLM2-135M-Instruct --steps 500 --batch-size 16 --bf16

Several CPU processes on one machine (data parallel over gloo; what the test suite runs)::

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m course_lib.kit.scale \
        dpo --tiny --steps 2 --report runs/ddp

(``--cpu`` alone would start one process: accelerate runs several CPU processes only under ``mpirun``;
``--multi_gpu`` starts them with torchrun and ``ACCELERATE_USE_CPU`` makes them form a gloo group.)

Data: ``reward`` and ``dpo`` train on preference pairs (``--pairs FILE``, JSONL as written by
``course_lib.data.preferences.save_pairs``; default lesson 10's pairs, built with
``course_preferences`` for the active profile); ``grpo`` samples replies to the course's training
prompts and scores them with the simulated annotator (lesson 9's reward).
"""

from __future__ import annotations

import argparse
import sys
import tempfile


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from course_lib.llm.scale import ALGORITHMS

    parser = parser or argparse.ArgumentParser(prog="course-kit scale", description=__doc__.splitlines()[0])
    parser.add_argument("algorithm", choices=ALGORITHMS, help="TRL's RewardTrainer, DPOTrainer or GRPOTrainer")
    parser.add_argument("--model", default=None,
                        help="hub id or folder (default: the course's SmolLM2-135M-Instruct from the cache)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model of SmolLM2's family (smoke test)")
    parser.add_argument("--pairs", default=None, help="preference pairs as JSONL (reward, dpo; default lesson 10's)")
    parser.add_argument("--steps", type=int, default=2, help="optimiser steps (default 2)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="pairs (reward, dpo) or completions (grpo) per step and device (default 8)")
    parser.add_argument("--lr", type=float, default=1e-6, help="learning rate (default 1e-6)")
    parser.add_argument("--beta", type=float, default=None,
                        help="DPO's beta (default 0.1) or GRPO's KL coefficient (default 0)")
    parser.add_argument("--num-generations", type=int, default=8, help="GRPO's group size (default 8)")
    parser.add_argument("--max-completion-length", type=int, default=32, help="GRPO's reply limit (default 32)")
    parser.add_argument("--lora", type=int, default=None, metavar="R", help="train rank-R LoRA adapters only")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (a GPU that has it)")
    parser.add_argument("--out", default=None, help="TRL's output folder (default: a temporary one)")
    parser.add_argument("--save", action="store_true", help="save the trained model into --out at the end")
    parser.add_argument("--report", default=None, metavar="PREFIX",
                        help="write PREFIX.rankN.json per process: its rank, the examples it trained on (hashes of "
                             "their token ids) and a checksum of its final weights (to check a multi-process run)")
    return parser


def _record_examples(trainer, seen: list[str]) -> None:
    """Wrap the trainer's collator so that each example this process trains on is recorded (a hash of its ids)."""
    import hashlib
    import json

    collate = trainer.data_collator

    def recording(features):
        for f in features:
            ids = {k: v for k, v in f.items() if k.endswith("input_ids") or k.endswith("_ids")}
            seen.append(hashlib.sha1(json.dumps(ids, sort_keys=True, default=list).encode()).hexdigest()[:16])
        return collate(features)

    trainer.data_collator = recording


def _weights_sha256(model) -> str:
    import hashlib

    import torch

    state = model.state_dict()
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _write_report(prefix: str, trainer, seen: list[str], initial_sha: str) -> None:
    import json
    from pathlib import Path

    rank = trainer.accelerator.process_index
    Path(f"{prefix}.rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world_size": trainer.accelerator.num_processes,
        "distributed_type": trainer.accelerator.distributed_type.value, "steps": trainer.state.global_step,
        "examples": seen, "initial_weights_sha256": initial_sha,
        "weights_sha256": _weights_sha256(trainer.accelerator.unwrap_model(trainer.model))}))


def run(args) -> int:
    from course_lib.llm.models import load_model, load_tokenizer, resolve_model, tiny_model
    from course_lib.llm.scale import reward_model_from, trl_trainer

    if args.tiny and args.model:
        print("error: --tiny and --model: expected one of them, got both", file=sys.stderr)
        return 2
    tok = load_tokenizer()
    tiny = tiny_model(seed=0, tokenizer=tok)[0] if args.tiny else None
    location = None if args.tiny else (args.model or resolve_model(None).location)

    pairs = prompts = reward_fn = None
    if args.algorithm in ("reward", "dpo") and args.pairs:
        from course_lib.data.preferences import load_pairs

        from course_lib.kit.cli import UsageError

        try:
            pairs, report = load_pairs(args.pairs)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--pairs: {exc}") from None
        print(report)
    elif args.algorithm in ("reward", "dpo"):
        from course_lib.llm.feedback import course_preferences

        sampler = tiny if tiny is not None else load_model(location)[0]  # lesson 10's pairs: the model's own replies
        pairs = course_preferences(sampler, tok, progress=True).train
    else:
        from course_lib.data.annotators import SimulatedAnnotator
        from course_lib.data.prompts import TRAIN_PROMPTS
        from course_lib.llm.generation import chat_prompt

        annotator = SimulatedAnnotator(temperature=0)
        prompts = [chat_prompt(tok, p) for p in TRAIN_PROMPTS]

        def reward_fn(prompts, replies):
            return annotator.scores(prompts, replies)

    if tiny is not None:
        model = reward_model_from(tiny) if args.algorithm == "reward" else tiny
    else:
        model = location  # TRL loads it (with a one-output score head for "reward")
    if args.save and not args.out:
        print("error: --save needs --out", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        trainer = trl_trainer(args.algorithm, model, tok, args.out or scratch, pairs=pairs, prompts=prompts,
                              reward_fn=reward_fn, steps=args.steps, batch_size=args.batch_size,
                              learning_rate=args.lr, beta=args.beta, num_generations=args.num_generations,
                              max_completion_length=args.max_completion_length, bf16=args.bf16,
                              lora_rank=args.lora)
        seen: list[str] = []
        if args.report:
            _record_examples(trainer, seen)
            initial_sha = _weights_sha256(trainer.model)
        trainer.train()
        if args.report:
            _write_report(args.report, trainer, seen, initial_sha)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        print(f"{args.algorithm}: {trainer.state.global_step} steps, loss per step "
              + " ".join(f"{x:.4f}" for x in losses))
        if args.save:
            trainer.save_model(args.out)
            print(f"saved to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
