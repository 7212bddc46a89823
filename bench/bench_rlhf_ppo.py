"""One RLHF-PPO step: course_lib's `rlhf_ppo` vs TRL 1.12.0's `PPOTrainer`, against the raw forward+backward.

All run SmolLM2-135M-Instruct in fp32 on the CPU in this process, with the same torch thread
count, on the same 8 prompts (the first 8 training prompts of ``course_lib.data.prompts``,
formatted with ``chat_prompt``: SmolLM2's chat template with its default system turn, 37 to 40
tokens, so every batch is left-padded to P = 40). One PPO step: sample one response of exactly
R = 32 tokens per prompt (temperature 1, the whole vocabulary), score it, compute the old
log-probs, values and reference log-probs, then 4 PPO epochs of 1 minibatch (the whole batch):
clipped surrogate + clipped value loss, kl_coef 0.05, gamma 1, lambda 0.95, clip 0.2, value
clip 0.2, vf_coef 0.1.

* course_lib, all: ``rlhf_ppo`` on ``PolicyWithValue(lm)`` (one body, its LM head and a value
  head) with ``trainable="all"``, lr 1e-5; the reward function is ``score_responses`` of a
  ``RewardModel`` on a second copy of the same LM (its head randomly initialised: the score
  does not change the work). ``target_kl=None``, so every step runs its 4 epochs, as TRL's
  does (the default 0.5 may stop an update early: less work).
* course_lib, top:4: ``RLHF_PRESETS["cpu"]``, the partial-parameter preset (the top 4 of 30
  layers, the final norm and the value head trained, lr 2e-4), with the same shapes
  (``max_new_tokens=32``) and again ``target_kl=None``. Its guard against probability
  ratios above 10 may skip a minibatch's backward; the script prints how many it skipped.
* TRL: ``trl.experimental.ppo.PPOTrainer`` (TRL 1.12.0, the last release that ships it) with
  ``AutoModelForCausalLM`` policy and reference, and ``AutoModelForSequenceClassification``
  (``num_labels=1``) value and reward models, all four from the same weights, fp32
  (``bf16=False``), no gradient checkpointing, ``per_device_train_batch_size=8``,
  ``num_mini_batches=1``, ``num_ppo_epochs=4``, ``response_length=32``, ``stop_token="eos"``
  (responses cut after their first end-of-turn token, as course_lib's masks do),
  ``missing_eos_penalty=None``, lr 1e-5 constant, ``report_to=[]``, no saving, evaluation or
  sample generations, ``use_cpu=True``, its default optimiser (transformers' fused AdamW).
  TRL's value model is a *second* transformer, trained next to the policy (each PPO epoch
  runs both forward and backward), while course_lib's value head shares the policy's body:
  that is how each library is built, and part of what is compared. TRL takes every pad token
  for padding, inside the prompt too, and SmolLM2's pad token is its end-of-turn token, which
  closes each chat turn of the prompt; so TRL gets a copy of the tokenizer whose pad token is
  ``<|endoftext|>`` (the shapes do not change).

By default both libraries stop generating once every row has produced the end-of-turn token,
which would make a step's shapes a matter of luck. Here both generate the full 32 tokens (TRL's
policy's generation config gets ``eos_token_id=None``, as TRL itself does with
``stop_token=None``; course_lib's sampler is handed a tokenizer without an end-of-sequence id),
and each still masks or cuts every response after its first end-of-turn token. The script checks that every generation has 32 new tokens and prints the mean response
length up to that token.

Timing. The machine may be shared, so the configurations take turns instead of running one
after the other: each runs in its own thread, one training call as usual, and hands the CPU
to the next one at the start of each step (its ``generate`` call); only the thread whose
turn it is computes. Round k thus times step k of each configuration and one raw pass, close
together, and a change in the machine's load hits all of them alike. A step runs from one
``generate`` call to the next (the last one to the return of the training call), so it covers
everything the library does per step. Inside a step, a wrapper of ``generate`` and forward
hooks split the time into: generation; scoring (the reward model's forward, and for
course_lib the tokenising in ``score_responses``); the rollout's no-grad forwards (old
log-probs and values, reference log-probs); the PPO epochs' forwards; and the rest (mostly
backward and the optimiser step). The first ``--warmup`` rounds are discarded; printed are
each step's times, the medians, and the ratios course_lib / TRL.

The raw limit: a hand-written forward+backward of the policy (body, LM head and value head,
the response tokens' log-probs and the values in the loss: the pass of one PPO epoch) on one
(8, P + 32) batch of sampled tokens, without optimiser step, once per round with every
parameter trainable and once with the top 4 layers only. Tokens processed per step are counted
as the PPO update's: 8 x (P + 32) tokens x 4 epochs. A configuration's share of the raw limit
is (those tokens / its median step time) / (raw tokens/s of its own trainable set); that is,
the share of its step that four bare forward+backward passes would take. Generation, scoring,
the rollout's forwards and the optimiser come on top, so 100% cannot be reached; TRL's second
(value) network counts as its overhead.

    bash bench/setup_trl_ppo_env.sh                # once: bench/.venv-trl-ppo, TRL 1.12.0 and course_lib
    bench/.venv-trl-ppo/bin/python bench/bench_rlhf_ppo.py [--steps 4] [--warmup 2] [--threads N]

On a CPU that other work keeps busy, pass ``--threads 1``: torch's OpenMP threads wait for
each other by spinning, and when a core is taken from one of them every step gets several
times slower. Needs the cached model (``course-kit model prepare``) and about 10 GiB of memory
(all configurations are loaded at once).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import os
import statistics
import tempfile
import threading
import time
from collections import defaultdict

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402

from course_lib.data.prompts import TRAIN_PROMPTS  # noqa: E402
from course_lib.llm import rollout  # noqa: E402
from course_lib.llm.generation import chat_prompt, sample  # noqa: E402
from course_lib.llm.finetune import count_parameters# noqa: E402
from course_lib.llm.models import cached_model_dir, load_model, load_tokenizer
from course_lib.llm.ppo import RLHF_PRESETS, RLHFConfig, rlhf_ppo, select_trainable  # noqa: E402
from course_lib.llm.reward_model import RewardModel, score_responses  # noqa: E402
from course_lib.llm.rollout import PolicyWithValue, response_outputs, sample_responses  # noqa: E402
from course_lib.llm.tokens import response_mask_from  # noqa: E402

BATCH, RESPONSE, EPOCHS, LR, KL_COEF, SEED = 8, 32, 4, 1e-5, 0.05, 0
PHASES = ("generate", "score", "rollout fwd", "PPO fwd", "rest")


class Baton:
    """Whose turn it is to compute: the participants take turns in a fixed order until each has left."""

    def __init__(self, names: list[str]):
        self.order = list(names)
        self.turn: str | None = self.order[0]
        self.cond = threading.Condition()

    def wait(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == name)

    def _pass(self, name: str, leave: bool) -> None:
        with self.cond:
            i = self.order.index(name)
            following = self.order[i + 1:] + self.order[:i] + ([] if leave else [name])
            if leave:
                self.order.remove(name)
            self.turn = following[0] if following else None
            self.cond.notify_all()

    def yield_turn(self, name: str) -> None:
        """Hand the turn to the next participant and wait until it comes back."""
        self._pass(name, leave=False)
        self.wait(name)

    def leave(self, name: str) -> None:
        self._pass(name, leave=True)


class StepClock:
    """Per-step wall times of one configuration, split into phases; hands the turn on at each step.

    A step starts when ``generate`` is called (after the turn has come back); a phase runs from a
    hooked module's forward pre-hook to its forward hook, or through a wrapped call (nested calls,
    such as the policy's forwards inside ``generate``, count for the outer phase only). ``rest``
    is the step minus its phases.
    """

    def __init__(self, name: str, baton: Baton, eos_token_id: int):
        self.name, self.baton, self.eos_token_id = name, baton, eos_token_id
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.phases: list[dict[str, float]] = []
        self.shapes: list[tuple[int, int]] = []
        self.lengths: list[float] = []
        self.ppo_forwards: list[int] = []
        self.threads: set[int] = set()
        self.active: str | None = None
        self.since = 0.0
        self.handles = []

    def _enter(self, phase: str) -> bool:
        if self.active is not None or not self.starts:
            return False
        self.active, self.since = phase, time.perf_counter()
        return True

    def _leave(self, phase: str) -> None:
        if self.active == phase:
            self.phases[-1][phase] += time.perf_counter() - self.since
            self.active = None

    def _end_step(self) -> None:
        self.ends.append(time.perf_counter())
        print(f"  [{self.name}] step {len(self.ends)}: {self.ends[-1] - self.starts[-1]:.2f} s", flush=True)

    def _start_step(self) -> None:
        """A step starts at its sampling: the previous one ends here, and the next configuration takes its turn."""
        if self.starts:
            self._end_step()
            self.baton.yield_turn(self.name)
        self.starts.append(time.perf_counter())
        self.phases.append(defaultdict(float))
        self.ppo_forwards.append(0)
        self.threads.add(torch.get_num_threads())
        self.active = None

    def _record(self, sequences: torch.Tensor, responses: torch.Tensor) -> None:
        self.shapes.append(tuple(sequences.shape))
        mask = response_mask_from(responses, self.eos_token_id)
        self.lengths.append(float(mask.sum(dim=1).float().mean()))

    def wrap_generate(self, lm) -> None:
        """TRL's step: its policy's ``generate``."""
        generate = lm.generate

        def timed(*args, **kwargs):
            self._start_step()
            self._enter("generate")
            out = generate(*args, **kwargs)
            self._leave("generate")
            sequences = out.sequences if hasattr(out, "sequences") else out
            self._record(sequences, sequences[:, kwargs["input_ids"].shape[1]:])
            return out

        lm.generate = timed

    def wrap_sampler(self) -> None:
        """course_lib's step: its sampler (``course_lib.llm.rollout.sample``), made to write all its tokens. The
        configurations run in threads of one process, so the patched sampler finds the calling thread's clock."""
        _SAMPLER_CLOCKS[threading.get_ident()] = self
        rollout.sample = _clocked_sample

    def timed_sample(self, lm, tokenizer, prompts, max_new_tokens, *args):
        self._start_step()
        self._enter("generate")
        out = full_length_sample(sample, lm, tokenizer, prompts, max_new_tokens, *args)
        self._leave("generate")
        self._record(torch.cat([out.prompt_ids, out.tokens], dim=1), out.tokens)
        return out

    def unwrap_sampler(self) -> None:
        del _SAMPLER_CLOCKS[threading.get_ident()]
        if not _SAMPLER_CLOCKS:
            rollout.sample = sample

    def hook(self, module, phase: str | None = None) -> None:
        """Time ``module``'s forwards as ``phase``, or, when None, as rollout or PPO forwards by grad mode."""

        def name() -> str:
            return phase or ("PPO fwd" if torch.is_grad_enabled() else "rollout fwd")

        def pre(mod, args):
            if self._enter(name()) and self.active == "PPO fwd":
                self.ppo_forwards[-1] += 1

        def post(mod, args, output):
            self._leave(name())

        self.handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def wrap_call(self, fn, phase: str):
        def timed(*args, **kwargs):
            entered = self._enter(phase)
            try:
                return fn(*args, **kwargs)
            finally:
                if entered:
                    self._leave(phase)

        return timed

    def finish(self) -> dict:
        self._end_step()
        for h in self.handles:
            h.remove()
        times = [b - a for a, b in zip(self.starts, self.ends)]
        phases = []
        for t, p in zip(times, self.phases):
            row = {k: p.get(k, 0.0) for k in PHASES[:-1]}
            row["rest"] = t - sum(row.values())
            phases.append(row)
        return {"times": times, "phases": phases, "shapes": self.shapes, "lengths": self.lengths,
                "ppo_forwards": self.ppo_forwards, "threads": self.threads}


_SAMPLER_CLOCKS: dict[int, StepClock] = {}
"""The clock of each thread that runs course_lib (see :meth:`StepClock.wrap_sampler`)."""


def _clocked_sample(lm, tokenizer, prompts, max_new_tokens, *args):
    return _SAMPLER_CLOCKS[threading.get_ident()].timed_sample(lm, tokenizer, prompts, max_new_tokens, *args)


class NoStop:
    """The tokenizer with no end-of-sequence id, so that the course's sampler writes every one of its tokens."""

    eos_token_id = -1

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        return self._tokenizer(*args, **kwargs)


def full_length_sample(real_sample, lm, tokenizer, prompts, max_new_tokens, *args):
    """course_lib's sampler for all ``max_new_tokens`` tokens, its masks still ending at the first end-of-turn."""
    out = real_sample(lm, NoStop(tokenizer), prompts, max_new_tokens, *args)
    mask = response_mask_from(out.tokens, tokenizer.eos_token_id)  # (B, R)
    return out._replace(response_mask=mask, finished=((out.tokens == tokenizer.eos_token_id) & mask).any(dim=1))


def run_course_lib(prompts: list[str], config: RLHFConfig, clock: StepClock) -> dict:
    torch.manual_seed(SEED)
    lm, tok = load_model()
    policy = PolicyWithValue(lm)
    reference = copy.deepcopy(lm)  # what rlhf_ppo makes itself when given none; made here to hook it
    rm_lm, _ = load_model()
    reward_model = RewardModel(rm_lm)
    reward_model.requires_grad_(False)
    clock.wrap_sampler()
    clock.hook(policy)
    clock.hook(reference)
    reward_fn = clock.wrap_call(lambda p, r: score_responses(reward_model, tok, p, r).tolist(), "score")
    result = rlhf_ppo(policy, tok, prompts, reward_fn, config, seed=SEED, reference=reference,
                      progress=False, live=False)
    out = clock.finish()
    clock.unwrap_sampler()
    trained, _ = count_parameters(policy)
    out.update(trained=trained, stopped=result.stopped_early, skipped=result.skipped_minibatches,
               optimizer="rlhf_ppo's torch.optim.Adam")
    return out


def run_trl(prompts: list[str], steps: int, clock: StepClock) -> dict:
    import datasets
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # the score heads are newly initialised, as intended
    torch.manual_seed(SEED)
    folder = str(cached_model_dir())
    tok = load_tokenizer()
    if tok.pad_token_id == tok.eos_token_id:  # TRL takes every pad id for padding, the prompt's end-of-turns too
        tok.pad_token = "<|endoftext|>"
    data = Dataset.from_dict({"input_ids": [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]})

    def lm():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)

    def scorer():
        return AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)

    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    with tempfile.TemporaryDirectory() as out_dir:
        args = PPOConfig(
            output_dir=out_dir, seed=SEED, per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
            num_mini_batches=1, num_ppo_epochs=EPOCHS, total_episodes=BATCH * steps, response_length=RESPONSE,
            temperature=1.0, stop_token="eos", missing_eos_penalty=None, kl_coef=KL_COEF, kl_estimator="k1",
            cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, gamma=1.0, lam=0.95, whiten_rewards=False,
            learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, bf16=False, fp16=False,
            **{checkpointing: False}, use_cpu=True, report_to=[], save_strategy="no", eval_strategy="no",
            num_sample_generations=0, disable_tqdm=True, dataloader_num_workers=0,
            local_rollout_forward_batch_size=64,
        )
        trainer = PPOTrainer(args=args, processing_class=tok, model=lm(), ref_model=lm(), reward_model=scorer(),
                             value_model=scorer(), train_dataset=data)
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        policy = trainer.policy_model
        policy.generation_config.eos_token_id = None  # generate all 32 tokens; the responses are still cut at EOS
        for model in (policy, trainer.value_model):
            if getattr(model, f"is_{checkpointing}", False):
                raise RuntimeError("TRL's model has gradient checkpointing on; expected it off")
        dtypes = {p.dtype for m in (policy, trainer.ref_model, trainer.value_model, trainer.reward_model)
                  for p in m.parameters()}
        clock.wrap_generate(policy)
        clock.hook(policy)
        clock.hook(trainer.value_model.model)
        clock.hook(trainer.ref_model)
        clock.hook(trainer.reward_model.model, "score")
        trainer.train()
        out = clock.finish()
        opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
        fused = any(g.get("fused") for g in opt.param_groups)
        trained = sum(p.numel() for g in opt.param_groups for p in g["params"])
        out.update(trained=trained, dtypes=dtypes,
                   optimizer=f"{type(opt).__module__}.{type(opt).__name__}{' (fused)' if fused else ''}")
    return out


def run_raw(samples, rounds: int, baton: Baton, name: str) -> dict:
    """Seconds of a bare forward+backward of the policy on ``samples``, all parameters and top:4, once per round."""
    torch.manual_seed(SEED)
    times: dict[str, list[float]] = {"all": [], "top:4": []}
    policies = {}
    for trainable in times:
        lm, _ = load_model()
        policies[trainable] = PolicyWithValue(lm)
        select_trainable(policies[trainable], trainable)
        policies[trainable].train()
    for k in range(rounds):
        if k:
            baton.yield_turn(name)
        for trainable, policy in policies.items():
            start = time.perf_counter()
            logp, values, _ = response_outputs(policy, samples, 1.0)  # the forward of a PPO epoch
            loss = -logp.mean() + values.square().mean()
            loss.backward()
            times[trainable].append(time.perf_counter() - start)
            policy.zero_grad(set_to_none=True)
        print(f"  [raw] round {k + 1}: all {times['all'][-1]:.2f} s, top:4 {times['top:4'][-1]:.2f} s", flush=True)
    return {"times": times, "threads": {torch.get_num_threads()}}


def fmt(xs) -> str:
    return " ".join(f"{x:.2f}" for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per configuration (default 4)")
    parser.add_argument("--warmup", type=int, default=2, help="steps run first and discarded (default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for all (default: torch's own; 1 on a busy CPU)")
    parser.add_argument("--skip-trl", action="store_true", help="run course_lib and the raw limit only")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    import transformers

    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        if not args.skip_trl:
            parser.error("trl is not installed here: run bash bench/setup_trl_ppo_env.sh, then this script with "
                         "bench/.venv-trl-ppo/bin/python (or pass --skip-trl)")
        trl_version = None
    rounds = args.warmup + args.steps
    tok = load_tokenizer()
    prompts = [chat_prompt(tok, p) for p in TRAIN_PROMPTS[:BATCH]]
    print(f"torch {torch.__version__}, {threads} threads; transformers {transformers.__version__}; trl {trl_version}")
    print(f"SmolLM2-135M-Instruct, fp32 CPU; {BATCH} prompts x {RESPONSE} response tokens, {EPOCHS} PPO epochs of "
          f"1 minibatch; {args.warmup} warm-up + {args.steps} timed rounds, the configurations taking turns")

    torch.manual_seed(SEED)
    lm, _ = load_model()
    rollout.sample = lambda *a: full_length_sample(sample, *a)
    samples = sample_responses(lm, tok, prompts, RESPONSE, 1.0)  # the raw passes' batch, (8, P + 32)
    rollout.sample = sample
    del lm
    seq_len = samples.input_ids.shape[1]

    full = RLHFConfig(steps=rounds, batch_size=BATCH, max_new_tokens=RESPONSE, temperature=1.0, learning_rate=LR,
                      kl_coef=KL_COEF, update_epochs=EPOCHS, num_minibatches=1, target_kl=None, trainable="all",
                      divergence_kl=None)  # like TRL, which has no divergence guard: the same updates on both sides
    partial = dataclasses.replace(RLHF_PRESETS["cpu"], steps=rounds, max_new_tokens=RESPONSE, target_kl=None,
                                  divergence_kl=None)
    names = ["course_lib all", "course_lib top:4"] + ([] if args.skip_trl else ["TRL PPOTrainer"]) + ["raw"]
    baton = Baton(names)
    jobs = {"course_lib all": lambda: run_course_lib(prompts, full, StepClock(names[0], baton, tok.eos_token_id)),
            "course_lib top:4": lambda: run_course_lib(prompts, partial, StepClock(names[1], baton, tok.eos_token_id)),
            "TRL PPOTrainer": lambda: run_trl(prompts, rounds, StepClock("TRL PPOTrainer", baton, tok.eos_token_id)),
            "raw": lambda: run_raw(samples, rounds, baton, "raw")}
    results, errors = {}, {}

    def participant(name: str) -> None:
        torch.set_num_threads(threads)  # per thread: OpenMP's thread count is a per-thread setting
        baton.wait(name)
        try:
            results[name] = jobs[name]()
            gc.collect()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors[name] = e
        finally:
            baton.leave(name)

    workers = [threading.Thread(target=participant, args=(n,), name=n) for n in names]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        name, error = next(iter(errors.items()))
        raise RuntimeError(f"{name} failed") from error

    raw = results.pop("raw")
    raw_rate = {t: BATCH * seq_len / statistics.median(xs[args.warmup:]) for t, xs in raw["times"].items()}
    tokens = BATCH * seq_len * EPOCHS  # the PPO update's tokens per step
    print(f"\nraw forward+backward on ({BATCH}, {seq_len}), threads {sorted(raw['threads'])}:")
    for t, xs in raw["times"].items():
        print(f"  {t:<6} s  {fmt(xs)}  (first {args.warmup} discarded): {raw_rate[t]:,.0f} tokens/s")
    print(f"tokens per step: {BATCH} x {seq_len} x {EPOCHS} epochs = {tokens:,}")
    trainable_of = {"course_lib all": "all", "course_lib top:4": "top:4", "TRL PPOTrainer": "all"}
    medians = {}
    for name, r in results.items():
        extra = f", dtypes {sorted(map(str, r['dtypes']))}" if "dtypes" in r else ""
        print(f"\n{name}: {r['trained'] / 1e6:.1f} M trained parameters, optimizer {r['optimizer']}{extra}, "
              f"threads {sorted(r['threads'])}")
        print(f"  generated shapes {sorted(set(r['shapes']))}; mean response length to the first EOS "
              f"{statistics.mean(r['lengths']):.1f} tokens; PPO forwards per step {r['ppo_forwards']}")
        if any(s != (BATCH, seq_len) for s in r["shapes"]):
            print(f"  WARNING: generated shapes {r['shapes']}, expected ({BATCH}, {seq_len}) every step")
        if r.get("stopped") or r.get("skipped"):
            print(f"  note: updates stopped early {r.get('stopped')}, minibatches skipped {r.get('skipped')}")
        print(f"  step s        {fmt(r['times'])}  (first {args.warmup} discarded)")
        for phase in PHASES:
            print(f"    {phase:<12}" + fmt(p[phase] for p in r["phases"]))
        medians[name] = statistics.median(r["times"][args.warmup:])

    print(f"\n{'':<18}{'median s/step':>14}" + "".join(f"{p:>12}" for p in PHASES) + f"{'tokens/s':>10}{'of raw':>8}")
    for name, r in results.items():
        m = medians[name]
        phase_medians = [statistics.median(p[phase] for p in r["phases"][args.warmup:]) for phase in PHASES]
        rate = tokens / m
        print(f"{name:<18}{m:>14.2f}" + "".join(f"{x:>12.2f}" for x in phase_medians)
              + f"{rate:>10,.0f}{rate / raw_rate[trainable_of[name]]:>8.0%}")
    if "TRL PPOTrainer" in medians:
        for name in ("course_lib all", "course_lib top:4"):
            print(f"ratio {name} / TRL of the median step time: {medians[name] / medians['TRL PPOTrainer']:.2f}"
                  + (" (target <= 0.5)" if name == "course_lib all" else ""))


if __name__ == "__main__":
    main()
