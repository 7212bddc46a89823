"""Sampling SmolLM2: the course's KV-cached loop (course_lib.llm.generation.sample) against transformers' generate.

(a) The loop against ``model.generate`` at batch 1, 8 and 32, 32 new tokens, temperature 1, distinct
    prompts: decoded positions per second (batch x decode steps run / seconds; both stop when every row
    has ended).
(b) The course's sampling workloads, the code path before this loop (``generate`` on the prompts
    repeated K times, then re-scoring) against the new one (each distinct prompt prefilled once, its KV
    cache shared by its K rows; the sampling-time log-probs reused where the old path re-scored):
    lesson 10's preference sampling (16 prompts x K = 4 replies x 24 tokens, batch 64), the held-out
    evaluation (16 prompts x 4 samples x 24 tokens: sample, then the policy's and the reference's
    log-probs; the new path needs only the reference's, each distinct prompt run once), and one GRPO
    group (1 prompt x 8 x 32 tokens).
    Replies per second.
(c) The new loop's replies per second at batch 16, 32, 64 and 128 (K = 4 per prompt), which sets the
    batch sizes of the course's sampling workloads.

Old and new take turns in each round, so a change in the machine's load hits both alike; medians over
rounds. Prints the load average and the thread count with the figures.

    python bench/bench_sampling.py [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; see the README on busy CPUs)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per configuration (default 3)")
    parser.add_argument("--batches", default="1,8,32", help="batch sizes of part (a) (default 1,8,32)")
    parser.add_argument("--parts", default="abc", help="which parts to run, e.g. 'a' (default abc)")
    args = parser.parse_args()

    import torch

    from course_lib.data.prompts import TEST_PROMPTS, TRAIN_PROMPTS
    from course_lib.llm.generation import chat_prompt, sample
    from course_lib.llm.models import load_model
    from course_lib.llm.rollout import Samples, response_outputs, sample_responses, shared_prompt_response_logprobs
    from course_lib.llm.tokens import replies_from, response_mask_from

    torch.set_num_threads(args.threads)
    model, tok = load_model(device="cpu")
    model.eval()
    prompts = [chat_prompt(tok, p) for p in TRAIN_PROMPTS + TEST_PROMPTS]

    @torch.no_grad()
    def hf_samples(batch_prompts, max_new_tokens):
        """The code path before the course's loop: generate on the (repeated) prompts, masks from its output."""
        batch = tok(batch_prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**batch, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)  # (B, P + R')
        P = batch["input_ids"].shape[1]
        mask = response_mask_from(out[:, P:], tok.eos_token_id)  # (B, R')
        return Samples(out, torch.cat([batch["attention_mask"], mask.long()], dim=1), mask, P,
                       replies_from(tok, out[:, P:], mask))

    def timed(fn):
        start = time.perf_counter()
        value = fn()
        return time.perf_counter() - start, value

    def rounds(pairs):
        """{name: fn}: each fn runs once per round, in turns -> ({name: median seconds}, {name: last value})."""
        times = {name: [] for name in pairs}
        values = {}
        fn0 = next(iter(pairs.values()))
        fn0()  # warm-up
        for _ in range(args.rounds):
            for name, fn in pairs.items():
                seconds, values[name] = timed(fn)
                times[name].append(seconds)
        return {k: statistics.median(v) for k, v in times.items()}, values

    load = os.getloadavg()
    print(f"SmolLM2-135M-Instruct fp32 on the CPU, {args.threads} torch thread(s), load average "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min), {os.cpu_count()} cores; "
          f"medians of {args.rounds} rounds")

    pref_prompts = [p for p in prompts[:16] for _ in range(4)]  # lesson 10: K = 4 per prompt, one batch of 64
    if "a" in args.parts:
        # (a) the loop against generate, distinct prompts, 32 new tokens
        print("\n(a) decoded positions per second (batch x steps run / s), 32 new tokens, temperature 1")
        for B in [int(b) for b in args.batches.split(",")]:
            batch_prompts = prompts[:B]
            steps = {}

            def hf():
                s = hf_samples(batch_prompts, 32)
                steps["generate"] = s.responses.shape[1]

            def kit():
                out = sample(model, tok, batch_prompts, 32, temperature=1.0)
                steps["course_lib"] = out.tokens.shape[1]

            med, _ = rounds({"generate": hf, "course_lib": kit})
            rate = {k: B * steps[k] / med[k] for k in med}
            ratio = rate["course_lib"] / rate["generate"]
            print(f"  batch {B:3d}: generate {rate['generate']:7.1f}/s, course_lib {rate['course_lib']:7.1f}/s "
                  f"(last run {steps['generate']} vs {steps['course_lib']} steps): ratio {ratio:.2f}x")

    if "b" in args.parts:
        # (b) the workloads, replies per second
        print("\n(b) replies per second, the code path before the loop vs the new one")
        eval_prompts = [p for p in prompts[16:32] for _ in range(4)]
        reference = model  # the evaluation's reference; the same weights here, the same work

        @torch.no_grad()
        def eval_old():
            s = hf_samples(eval_prompts, 24)
            logp = response_outputs(model, s, with_values=False).logp
            ref = response_outputs(reference, s, with_values=False).logp
            return s, logp - ref

        @torch.no_grad()
        def eval_new():
            s = sample_responses(model, tok, eval_prompts, 24)
            ref = shared_prompt_response_logprobs(reference, s)  # each distinct prompt once
            return s, s.logp - ref

        group = [prompts[40]] * 8
        workloads = {
            "preference sampling (16 x 4 x 24)": ({"old": lambda: hf_samples(pref_prompts, 24),
                                                    "new": lambda: sample_responses(model, tok, pref_prompts, 24)}, 64),
            "held-out evaluation (16 x 4 x 24)": ({"old": eval_old, "new": eval_new}, 64),
            "GRPO group (1 x 8 x 32)": ({"old": lambda: hf_samples(group, 32),
                                         "new": lambda: sample_responses(model, tok, group, 32)}, 8),
        }
        for name, (fns, n) in workloads.items():
            med, _ = rounds(fns)
            print(f"  {name}: old {n / med['old']:6.2f} replies/s ({med['old']:.2f} s), new {n / med['new']:6.2f} "
                  f"replies/s ({med['new']:.2f} s): speed-up {med['old'] / med['new']:.2f}x")

    if "c" in args.parts:
        # (c) the batch size of a sampling workload: K = 4 replies per prompt, 24 tokens, the new loop
        print("\n(c) replies per second of the new loop by batch size (K = 4 replies per prompt, 24 tokens)")
        import resource

        for B in (16, 32, 64, 128):
            jobs = [p for p in prompts[:B // 4] for _ in range(4)]
            med, _ = rounds({"new": lambda: sample_responses(model, tok, jobs, 24)})
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB, the process so far
            print(f"  batch {B:3d}: {B / med['new']:6.2f} replies/s (process peak RSS so far {peak:.2f} GiB)")

        # where the new loop's time goes: the prefill (one token: prefill + one LM head) against the whole call
        prefill, _ = rounds({"prefill": lambda: sample(model, tok, pref_prompts, 1)})
        whole, values = rounds({"whole": lambda: sample(model, tok, pref_prompts, 24)})
        steps = values["whole"].tokens.shape[1]
        decode = whole["whole"] - prefill["prefill"]
        print(f"\nwhere the time goes (preference sampling, new loop): prefill of 16 distinct prompts "
              f"{prefill['prefill']:.2f} s, {steps - 1} decode steps of 64 rows {decode:.2f} s "
              f"({decode / max(steps - 1, 1) * 1e3:.0f} ms per step)")


if __name__ == "__main__":
    main()
