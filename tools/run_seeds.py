"""Run the training seeds of the LLM lessons' headline experiments and commit their results.

    python tools/run_seeds.py [--experiment sft-rl|rlhf|dpo|all] [--seeds 0 1 2]

Lessons 9 (SFT, RL, SFT then RL), 11 (RLHF with PPO) and 12 (DPO) run seed 0 live; their claims rest on
seeds 0, 1 and 2. This script trains the seeds with the same functions and settings the lessons use
(course_lib.llm.protocols), evaluates each model on the test prompts, and writes
course_lib/data/results/<experiment>_<profile>.json, which the lessons load (checking its key) and label
as such; seed 0 is in the file too, so a lesson can compare it with its live run. It runs in the
active profile (COURSE_PROFILE, default cpu): on 2 CPU cores about 8 minutes per seed of lesson 9,
4 per RLHF seed and 3 per DPO seed. `make seeds` runs all three.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", choices=["sft-rl", "rlhf", "dpo", "all"], default="all",
                        help="which lesson's seeds: sft-rl (lesson 9), rlhf (lesson 11), dpo (lesson 12) or all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds to run (default: 0 1 2)")
    args = parser.parse_args(argv)
    if any(s < 0 for s in args.seeds):
        parser.error(f"--seeds: expected ints >= 0, got {args.seeds}")

    from course_lib.llm import protocols
    from course_lib.llm.feedback import course_preferences, prepare_reward_model, reward_model_key
    from course_lib.llm.models import load_model
    from course_lib.utils import get_profile

    profile = get_profile().name
    base, tok = load_model()
    start = None  # the start model's evaluation, shared by the experiments that do not score a proxy

    def report(name: str, ev, t0: float, start) -> None:
        print(f"{name}: test gold {ev.gold.mean():.3f} (start {start.gold.mean():.3f}) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    if args.experiment in ("sft-rl", "dpo", "all"):
        start = protocols.evaluate(base, tok, base)
    if args.experiment in ("sft-rl", "all"):
        evaluations = {}
        for seed in args.seeds:
            t0 = time.perf_counter()
            sft_model, _ = protocols.sft_run(base, tok, seed)
            evaluations[f"SFT seed {seed}"] = protocols.evaluate(sft_model, tok, base)
            rl_policy, _ = protocols.rl_run(base, base, tok, seed)
            evaluations[f"RL seed {seed}"] = protocols.evaluate(rl_policy.lm, tok, base)
            sft_rl_policy, _ = protocols.rl_run(sft_model, sft_model, tok, seed)
            evaluations[f"SFT -> RL seed {seed}"] = protocols.evaluate(sft_rl_policy.lm, tok, base)
            report(f"lesson 9 seed {seed} (SFT -> RL)", evaluations[f"SFT -> RL seed {seed}"], t0, start)
        print(f"wrote {protocols.save_seed_results(protocols.sft_rl_key(base), evaluations, start)}")
    if args.experiment in ("rlhf", "all"):
        rm = prepare_reward_model(base, tok)
        start_rlhf = protocols.evaluate(base, tok, base, proxy_fn=protocols.reward_fn(rm, tok))
        evaluations = {}
        for seed in args.seeds:
            t0 = time.perf_counter()
            _, evaluations[f"seed {seed}"], _ = protocols.rlhf_run(base, tok, rm, seed)
            report(f"rlhf seed {seed}", evaluations[f"seed {seed}"], t0, start_rlhf)
        key = protocols.rlhf_key(base, reward_model_key(base, profile))
        print(f"wrote {protocols.save_seed_results(key, evaluations, start_rlhf)}")
    if args.experiment in ("dpo", "all"):
        data = course_preferences(base, tok)
        pairs = protocols.dpo_train_pairs(data)
        evaluations, ref = {}, None
        for seed in args.seeds:
            t0 = time.perf_counter()
            run, evaluations[f"seed {seed}"], _ = protocols.dpo_run(base, tok, pairs, seed, ref_logps=ref)
            ref = run.ref_logps
            report(f"dpo seed {seed}", evaluations[f"seed {seed}"], t0, start)
        print(f"wrote {protocols.save_seed_results(protocols.dpo_key(base, data), evaluations, start)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
