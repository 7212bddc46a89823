"""Run the further training seeds of the LLM lessons' headline experiments and commit their results.

    python tools/run_seeds.py [--experiment rlhf|dpo|all] [--seeds 0 1 2]

Lesson 11 (RLHF with PPO) and lesson 12 (DPO) run seed 0 live; their claims rest on seeds 0, 1 and 2.
This script trains the other seeds with the same functions and settings the lessons use
(course_lib.llm.protocols), evaluates each on the test prompts, and writes
course_lib/data/results/<experiment>_<profile>.json, which the lessons load and label as such.
It runs in the active profile (COURSE_PROFILE, default cpu): about 4 minutes per RLHF seed and 5 per DPO
seed on 2 CPU cores. `make seeds` runs it for both experiments.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", choices=["rlhf", "dpo", "all"], default="all",
                        help="which lesson's seeds: rlhf (lesson 11), dpo (lesson 12) or all (default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds to run (default: 0 1 2; the lessons run seed 0 live and check it against the file)")
    args = parser.parse_args(argv)
    if any(s < 0 for s in args.seeds):
        parser.error(f"--seeds: expected ints >= 0, got {args.seeds}")

    from course_lib.llm import protocols
    from course_lib.llm.feedback import course_preferences, prepare_reward_model, reward_model_key
    from course_lib.llm.models import load_model
    from course_lib.utils import get_profile

    profile = get_profile().name
    base, tok = load_model()
    start = protocols.evaluate(base, tok, base)
    if args.experiment in ("rlhf", "all"):
        rm = prepare_reward_model(base, tok)
        from course_lib.llm.reward_model import score_responses

        def proxy(prompts, replies):
            return score_responses(rm, tok, prompts, replies).tolist()

        start_rlhf = protocols.evaluate(base, tok, base, proxy_fn=proxy)
        evaluations = {}
        for seed in args.seeds:
            t0 = time.perf_counter()
            _, evaluations[seed], _ = protocols.rlhf_run(base, tok, rm, seed)
            print(f"rlhf seed {seed}: gold {evaluations[seed].gold.mean():+.3f} (start {start_rlhf.gold.mean():+.3f}) "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
        key = protocols.rlhf_key(base, reward_model_key(base, profile))
        print(f"wrote {protocols.save_seed_results(key, evaluations, start_rlhf)}")
    if args.experiment in ("dpo", "all"):
        data = course_preferences(base, tok)
        pairs = protocols.dpo_train_pairs(data)
        evaluations, ref = {}, None
        for seed in args.seeds:
            t0 = time.perf_counter()
            run, evaluations[seed], _ = protocols.dpo_run(base, tok, pairs, seed, ref_logps=ref)
            ref = run.ref_logps
            print(f"dpo seed {seed}: gold {evaluations[seed].gold.mean():+.3f} (start {start.gold.mean():+.3f}) "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
        print(f"wrote {protocols.save_seed_results(protocols.dpo_key(base, data), evaluations, start)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
