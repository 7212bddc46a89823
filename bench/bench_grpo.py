"""One GRPO step: course_lib's `grpo` vs TRL's `GRPOTrainer`, 8 completions of up to 32 tokens per step.

Both train every parameter of SmolLM2-135M-Instruct (fp32, CPU) on lesson 14's arithmetic task: per
step one training question (chat-formatted, the same questions in the same order), a group of 8
sampled completions (temperature 1, no top-k or top-p, at most 32 new tokens, stopped at EOS),
scored by ``arithmetic_reward``, group-normalised advantages (mean and std of the group), one
update (so the probability ratio is 1 and no old log-probs are computed), PPO's clipped loss
averaged over all the batch's tokens (TRL's default ``loss_type="dapo"``; course_lib's
``loss_norm="token"``), no KL term (TRL's default ``beta=0``; ``kl_coef=0``), AdamW at lr 1e-6 with a
constant schedule and the gradient clipped to norm 1. They run one after the other in this process
with the same torch thread count.

A step is timed from the start of one step to the start of the next: for course_lib the first forward
of the step's sampling (a forward pre-hook on the model's body: the first call in eval mode after the
update's calls in training mode), for TRL its ``on_step_begin`` callback, which comes before its
generation. The first ``--warmup`` steps are discarded. Sampling makes completions of different
lengths in the two runs, so the script prints the mean completion length per step of each and
the time per completion token as well as per step.

    python bench/bench_grpo.py [--steps 5] [--warmup 1] [--threads N]

On a CPU that other work keeps busy, pass ``--threads 1`` (see bench_reward_model.py).
Needs the `bench` extra (TRL) and the cached model (``course-kit model prepare``).
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time

import numpy as np
import torch

from _common import parse_bench_args, quiet_hf_progress

from course_lib.data.arithmetic import TRAIN_QUESTIONS, arithmetic_reward
from course_lib.llm.generation import chat_prompt
from course_lib.llm.grpo import GRPOConfig, grpo
from course_lib.llm.models import load_model, load_tokenizer, resolve_model

G, MAX_NEW, LR, SEED = 8, 32, 1e-6, 0


def training_prompts(tok) -> list[str]:
    return [chat_prompt(tok, q.text) for q in TRAIN_QUESTIONS]


def course_lib_order(n: int) -> list[int]:
    """The order in which ``grpo(seed=SEED)`` takes n prompts, one per step (its first pass)."""
    return np.random.default_rng(SEED).permutation(n).tolist()


class SamplingClock:
    """A forward pre-hook on the model's body noting when each step's sampling starts: the first forward in eval
    mode after forwards in training mode (``grpo`` samples in eval mode, then updates in training mode)."""

    def __init__(self, module):
        self.starts: list[float] = []
        self.training = True  # the mode of the last forward; as if an update came before the first step
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        if self.training and not module.training:
            self.starts.append(time.perf_counter())
        self.training = module.training

    def step_times(self) -> list[float]:
        """Seconds from each step's sampling to the next step's: one per step but the last."""
        self.handle.remove()
        return [b - a for a, b in zip(self.starts, self.starts[1:])]


def run_course_lib(prompts: list[str], steps: int) -> dict:
    lm, tok = load_model()
    config = GRPOConfig(steps=steps, prompts_per_step=1, group_size=G, max_new_tokens=MAX_NEW, temperature=1.0,
                        learning_rate=LR, update_epochs=1, kl_coef=0.0, scale_advantages=True, loss_norm="token",
                        max_grad_norm=1.0, trainable="all",
                        divergence_kl=None)  # TRL has no such guard: its extra forward pass would not be like for like
    clock = SamplingClock(lm.model)
    result = grpo(lm, tok, prompts, arithmetic_reward, config, seed=SEED, progress=False, live=False)
    lengths = result.logger.as_arrays("grpo/response_length")[1].tolist()
    return {"times": clock.step_times(), "lengths": lengths}


def run_trl(prompts: list[str], steps: int) -> dict:
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig as TRLGRPOConfig
    from trl import GRPOTrainer

    class StepClock(TrainerCallback):
        def __init__(self):
            self.starts = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.starts.append(time.perf_counter())

    from course_lib.llm.scale import prompt_dataset

    quiet_hf_progress()
    tok = load_tokenizer()
    data = prompt_dataset([prompts[i] for i in course_lib_order(len(prompts))])

    def reward(prompts, completions, **columns):
        return arithmetic_reward(prompts, completions)

    clock = StepClock()
    with tempfile.TemporaryDirectory() as out:
        args = TRLGRPOConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=G, num_generations=G,
            max_completion_length=MAX_NEW, temperature=1.0, top_p=1.0, top_k=0, beta=0.0, num_iterations=1,
            loss_type="dapo", scale_rewards="group", learning_rate=LR, weight_decay=0.0, lr_scheduler_type="constant",
            warmup_steps=0, max_grad_norm=1.0, shuffle_dataset=False, bf16=False, fp16=False,
            logging_strategy="steps", logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
            disable_tqdm=True, dataloader_num_workers=0, use_cpu=True, seed=SEED,
            model_init_kwargs={"dtype": "float32"},
        )
        trainer = GRPOTrainer(model=resolve_model(None).location, reward_funcs=reward, args=args, train_dataset=data,
                              processing_class=tok, callbacks=[clock])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return {"times": [b - a for a, b in zip(clock.starts, clock.starts[1:])], "lengths": lengths}


def main() -> None:
    args = parse_bench_args(__doc__.splitlines()[0], steps=5, warmup=1)
    import transformers
    import trl

    total = args.warmup + args.steps + 1  # the last step only marks where the one before it ends
    prompts = training_prompts(load_tokenizer())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; transformers {transformers.__version__}; "
          f"trl {trl.__version__}")
    print(f"SmolLM2-135M-Instruct, all parameters, fp32 CPU; 1 question x {G} completions of <= {MAX_NEW} tokens "
          f"per step; {args.warmup} warm-up + {args.steps} timed steps each")
    results = {}
    for name, run in (("course_lib", run_course_lib), ("TRL GRPOTrainer", run_trl)):
        r = run(prompts, total)
        gc.collect()
        timed = slice(args.warmup, args.warmup + args.steps)
        r["timed"], r["timed_lengths"] = r["times"][timed], r["lengths"][timed]
        results[name] = r
        print(f"{name}: step s " + " ".join(f"{t:.2f}" for t in r["times"]) + f" (first {args.warmup} discarded)")
        print("  mean completion tokens " + " ".join(f"{x:.1f}" for x in r["lengths"]), flush=True)

    print(f"\n{'':<18}{'median s/step':>14}{'ms/completion token':>21}")
    per_token = {}
    for name, r in results.items():
        per_token[name] = sum(r["timed"]) / (G * sum(r["timed_lengths"]))
        print(f"{name:<18}{statistics.median(r['timed']):>14.2f}{1000 * per_token[name]:>21.1f}")
    course, trl_r = results["course_lib"], results["TRL GRPOTrainer"]
    print(f"ratio TRL / course_lib of the median step time: {statistics.median(trl_r['timed']) / statistics.median(course['timed']):.2f}x "
          f"(target >= 1.3); per completion token: {per_token['TRL GRPOTrainer'] / per_token['course_lib']:.2f}x")


if __name__ == "__main__":
    main()
