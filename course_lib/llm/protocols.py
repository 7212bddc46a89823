"""The written protocols of the LLM lessons' headline experiments, shared by each lesson and ``tools/run_seeds.py``.

A lesson's claim ("RLHF raises the gold score on test prompts") rests on several training seeds. A
lesson runs the first seed live; the others come from a results file that ``tools/run_seeds.py``
(``make seeds``) writes by calling the very functions the lesson calls, with the same settings, so
the file and the lesson cannot follow different protocols. Everything a run depends on is in the
file's key (:func:`results_key`): a file written for another protocol, model, reward model, gold
judge or profile is not used, and the lesson says so.

Protocol, fixed before the runs (each lesson states it again before its run):

* every reported number is measured on :data:`~course_lib.data.prompts.TEST_PROMPTS` (32 topics), with
  :func:`evaluate` (``per_prompt`` replies per prompt, one sampling seed for every model), and every choice
  (learning rate, epochs, beta) is made on :data:`~course_lib.data.prompts.VALIDATION_PROMPTS` or taken
  from a preset fixed before;
* gains are :func:`~course_lib.llm.evaluation.paired_bootstrap` intervals over test topics and training
  seeds, and an interval that includes 0 is reported as "not shown".
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from course_lib.llm.evaluation import HeldOutEvaluation, evaluate_policy
from course_lib.utils import by_profile, get_profile
from course_lib.utils.validation import check_float

SEEDS = (0, 1, 2)
"""Training seeds of every headline claim: seed 0 runs live in the lesson, 1 and 2 come from the results file."""

EVAL_SEED = 2024
"""The sampling seed of every evaluation: each model sees the same random numbers."""


def eval_settings() -> dict:
    """Replies per test prompt and the reply limit of the active profile."""
    return {"per_prompt": by_profile(ci=1, cpu=2, gpu=8), "max_new_tokens": by_profile(ci=8, cpu=24, gpu=48),
            "prompts": by_profile(ci=4, cpu=None, gpu=None)}


def chat_test_prompts(tokenizer) -> list[str]:
    """The chat-formatted test prompts of the active profile (ci: the first 4)."""
    from course_lib.data.prompts import TEST_PROMPTS
    from course_lib.llm.generation import chat_prompt

    return [chat_prompt(tokenizer, p) for p in TEST_PROMPTS[:eval_settings()["prompts"]]]


def chat_validation_prompts(tokenizer) -> list[str]:
    """The chat-formatted validation prompts of the active profile (ci: the first 4)."""
    from course_lib.data.prompts import VALIDATION_PROMPTS
    from course_lib.llm.generation import chat_prompt

    return [chat_prompt(tokenizer, p) for p in VALIDATION_PROMPTS[:eval_settings()["prompts"]]]


def gold_judge():
    """The gold judge of every LLM lesson: the rubric annotator without noise (its ``scores`` is a gold function)."""
    from course_lib.data.annotators import SimulatedAnnotator

    return SimulatedAnnotator(temperature=0)


def evaluate(lm, tokenizer, reference, prompts=None, proxy_fn=None) -> HeldOutEvaluation:
    """The lessons' evaluation: :func:`~course_lib.llm.evaluation.evaluate_policy` on the test prompts (or
    ``prompts``) with the rubric's gold score, KL to ``reference``, the settings of :func:`eval_settings`."""
    settings = eval_settings()
    return evaluate_policy(lm, tokenizer, prompts if prompts is not None else chat_test_prompts(tokenizer),
                           gold_judge().scores, reference, per_prompt=settings["per_prompt"],
                           max_new_tokens=settings["max_new_tokens"], proxy_fn=proxy_fn, seed=EVAL_SEED)


# ---- lesson 9: SFT, RL, SFT then RL --------------------------------------------------------------------------

def sft_config():
    """Lesson 9's SFT settings: the profile's ``SFT_PRESETS`` (cpu: 3 epochs of the 32 demonstrations, top 4 layers)."""
    from course_lib.llm.sft import SFT_PRESETS

    return by_profile(ci=replace(SFT_PRESETS["cpu"], epochs=1, batch_size=4), cpu=SFT_PRESETS["cpu"],
                      gpu=SFT_PRESETS["gpu"])


def rl_config():
    """Lesson 9's RL settings: the profile's ``RLHF_PRESETS`` with 20 steps (cpu), the gold judge as the reward."""
    from course_lib.llm.ppo import RLHF_PRESETS

    return by_profile(ci=replace(RLHF_PRESETS["cpu"], steps=1, batch_size=4, max_new_tokens=4, update_epochs=1),
                      cpu=replace(RLHF_PRESETS["cpu"], steps=20), gpu=RLHF_PRESETS["gpu"])


def demonstrations() -> list[tuple[str, str]]:
    """Lesson 9's demonstrations: the 32 of :mod:`course_lib.data.demonstrations` (ci: the first 4)."""
    from course_lib.data.demonstrations import DEMONSTRATIONS

    return by_profile(ci=DEMONSTRATIONS[:4], cpu=DEMONSTRATIONS)


def sft_run(base, tokenizer, seed: int):
    """SFT of a copy of ``base`` on :func:`demonstrations`. Returns ``(model, logger)``."""
    import copy

    from course_lib.llm.generation import chat_prompt
    from course_lib.llm.sft import sft

    model = copy.deepcopy(base)
    demos = demonstrations()
    logger = sft(model, tokenizer, [chat_prompt(tokenizer, p) for p, _ in demos], [r for _, r in demos], sft_config(),
                 seed=seed)
    return model, logger


def rl_run(start, reference, tokenizer, seed: int, live: bool | None = False):
    """PPO from a copy of ``start`` with the gold judge's score as the reward, KL-anchored to ``reference``, on every
    training prompt. Returns ``(policy, RLHFResult)``."""
    import copy

    from course_lib.data.prompts import TRAIN_PROMPTS
    from course_lib.llm.generation import chat_prompt
    from course_lib.llm.ppo import rlhf_ppo
    from course_lib.llm.rollout import PolicyWithValue

    policy = PolicyWithValue(copy.deepcopy(start))
    run = rlhf_ppo(policy, tokenizer, [chat_prompt(tokenizer, p) for p in TRAIN_PROMPTS], gold_judge().scores,
                   rl_config(), seed=seed, reference=reference, live=live)
    return policy, run


def sft_rl_key(base) -> dict:
    """The results key of lesson 9's seeds: :func:`results_key` with the SFT and RL configs."""
    return results_key("lesson09_sft_rl", base, {"sft": asdict(sft_config()), "rl": asdict(rl_config()),
                                                 "demonstrations": len(demonstrations())})


# ---- lesson 11: RLHF with PPO against lesson 10's reward model ---------------------------------------------

def rlhf_config():
    """Lesson 11's settings: the profile's ``RLHF_PRESETS`` with 20 steps (cpu) at a learning rate of 1e-4
    (cpu; chosen in an earlier version of the course on the prompts that are now the validation split)."""
    from course_lib.llm.ppo import RLHF_PRESETS

    name = get_profile().name
    return replace(RLHF_PRESETS[name], steps=by_profile(ci=2, cpu=20, gpu=RLHF_PRESETS["gpu"].steps),
                   learning_rate=by_profile(ci=RLHF_PRESETS["ci"].learning_rate, cpu=1e-4,
                                            gpu=RLHF_PRESETS["gpu"].learning_rate))


def reward_fn(reward_model, tokenizer):
    """``fn(prompts, replies)`` -> the reward model's score of each reply: lesson 11's reward and proxy."""
    from course_lib.llm.reward_model import score_responses

    def score(prompts, replies):
        return score_responses(reward_model, tokenizer, prompts, replies).tolist()

    return score


def rlhf_run(base, tokenizer, reward_model, seed: int, live: bool | None = False):
    """One seed of lesson 11: PPO from ``base`` against ``reward_model`` on every training prompt, the rubric
    logged as ``rlhf/gold_score``, then :func:`evaluate` with the reward model as proxy. Returns
    ``(RLHFResult, HeldOutEvaluation, policy)``."""
    import copy

    from course_lib.data.prompts import TRAIN_PROMPTS
    from course_lib.llm.generation import chat_prompt
    from course_lib.llm.ppo import rlhf_ppo
    from course_lib.llm.rollout import PolicyWithValue

    proxy = reward_fn(reward_model, tokenizer)
    policy = PolicyWithValue(copy.deepcopy(base))
    train = [chat_prompt(tokenizer, p) for p in TRAIN_PROMPTS]
    run = rlhf_ppo(policy, tokenizer, train, proxy, rlhf_config(), seed=seed, reference=base,
                   gold_fn=gold_judge().scores, live=live)
    return run, evaluate(policy.lm, tokenizer, base, proxy_fn=proxy), policy


# ---- lesson 12: DPO on the shipped preference pairs -----------------------------------------------------

def dpo_train_pairs(data) -> list:
    """Lesson 12's training pairs: cpu the first 640 training pairs (80 steps of 8; the first round's ranked groups
    of the first 107 training prompts, 54 topics), ci the first 16, gpu all of them."""
    return list(data.train[:by_profile(ci=16, cpu=640, gpu=len(data.train))])


def dpo_config(beta: float | None = None):
    """Lesson 12's settings: the profile's ``DPO_PRESETS`` (one pass, top 4 layers in cpu), beta as given."""
    from course_lib.llm.dpo import DPO_PRESETS

    config = DPO_PRESETS[get_profile().name]
    return config if beta is None else replace(config, beta=beta)


def dpo_run(base, tokenizer, pairs, seed: int, ref_logps=None, live: bool | None = False, beta: float | None = None):
    """One seed of lesson 12: DPO from a copy of ``base`` on ``pairs``, then :func:`evaluate`.
    Returns ``(DPOResult, HeldOutEvaluation, policy)``."""
    import copy

    from course_lib.llm.dpo import train_dpo

    policy = copy.deepcopy(base)
    run = train_dpo(policy, tokenizer, pairs, dpo_config(beta), seed=seed, ref_logps=ref_logps, live=live)
    return run, evaluate(policy, tokenizer, base), policy


# ---- lesson 13: RLAIF, a competent judge as the positive control, SmolLM2 as its own judge -----------------

RLAIF_FLIP_SHARE = 0.25
"""Lesson 13's degraded judge: the competent judge's labels with this share of the pairs flipped at random."""

RLAIF_LABEL_SEED = 13
"""Seeds the order in which each pair is shown to a judge, the competent judge's coin on ties and the flips: fixed
for every training seed, so that the labels are the judge's and only DPO's seed varies. Each of the three draws
has its own stream, ``default_rng([RLAIF_LABEL_SEED, k])`` with k = 0 (order), 1 (ties), 2 (flips): a coin on
ties drawn from the order's own stream would copy the annotator's label into the judge's."""

_ORDER, _TIES, _FLIPS = 0, 1, 2

RLAIF_LABELS = ("annotator", "competent judge", "SmolLM2 judge", "competent judge, 25% flipped")
"""The label sets of lesson 13's DPO runs, in this order: the annotator's labels as shipped, the rule judge's
(:mod:`course_lib.llm.constitution_judge`), SmolLM2's symmetric-margin labels, and the rule judge's with
:data:`RLAIF_FLIP_SHARE` flipped."""


def rlaif_train_pairs(data) -> list:
    """Lesson 13's training pairs: every 14th shipped training pair (cpu: 162 pairs from all 94 training topics,
    21 steps of 8), ci the first 4, gpu all of them."""
    return list(by_profile(ci=data.train[:4], cpu=data.train[::14], gpu=data.train))


def rlaif_judged_test_pairs(data) -> list:
    """The test pairs SmolLM2 judges in lesson 13 (in both orders, so a subset): every 12th (cpu: 64 pairs),
    ci the first 4, gpu all 768. The rule judge labels every test pair."""
    return list(by_profile(ci=data.test[:4], cpu=data.test[::12], gpu=data.test))


def present_pairs(pairs, seed: int = RLAIF_LABEL_SEED) -> tuple[list, list, list, np.ndarray]:
    """Each pair shown in a random order: ``(prompts, first, second, annotator)``, where ``annotator[i]`` is 0 when
    the annotator's chosen reply is shown first and 1 when it is second (a coin per pair, seeded), so a judge that
    always picks the first reply agrees half of the time."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs: expected at least one preference pair, got none")
    second_is_chosen = np.random.default_rng([seed, _ORDER]).random(len(pairs)) < 0.5  # (N,)
    first = [p.rejected if s else p.chosen for p, s in zip(pairs, second_is_chosen)]
    second = [p.chosen if s else p.rejected for p, s in zip(pairs, second_is_chosen)]
    return [p.prompt for p in pairs], first, second, second_is_chosen.astype(int)


def forced_choice(labels, seed: int = RLAIF_LABEL_SEED) -> np.ndarray:
    """(N,) labels 0/1 from a judge's labels that may say -1 (no preference): a seeded coin decides those, as a
    labeller made to choose would guess."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, (-1, 0, 1)).all():
        raise ValueError(f"labels: expected a 1-d array of 0, 1 or -1, got {labels!r:.80}")
    coin = (np.random.default_rng([seed, _TIES]).random(len(labels)) < 0.5).astype(int)  # (N,), not the order's coin
    return np.where(labels == -1, coin, labels).astype(int)


def flip_labels(labels, share: float = RLAIF_FLIP_SHARE, seed: int = RLAIF_LABEL_SEED) -> np.ndarray:
    """(N,) 0/1 labels with ``round(share * N)`` of them, chosen at random (seeded), flipped: a worse judge."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels: expected a 1-d array of 0 and 1, got {labels!r:.80}")
    check_float("share", share, "[0, 1]")
    flipped = labels.copy()
    chosen = np.random.default_rng([seed, _FLIPS]).permutation(len(labels))[:int(round(share * len(labels)))]
    flipped[chosen] = 1 - flipped[chosen]
    return flipped.astype(int)


def rule_labels(prompts, first, second) -> np.ndarray:
    """(N,) the competent (rule) judge's labels, 0: the first reply is better; ties by :func:`forced_choice`."""
    from course_lib.llm.constitution_judge import rule_judge_pairs

    return forced_choice(rule_judge_pairs(prompts, first, second).labels)


def smollm_labels(model, tokenizer, prompts, first, second, progress: bool = False):
    """SmolLM2 as its own judge: ``(labels, JudgeResult)``, label 1 where the symmetric margin prefers the second
    reply (:func:`course_lib.llm.judge.judge_pairs` with the course's constitution, both orders)."""
    from course_lib.llm.judge import judge_pairs, load_constitution

    judged = judge_pairs(model, tokenizer, load_constitution(), prompts, first, second, progress=progress)
    return (judged.margin < 0).astype(int), judged


def labelled_pairs(prompts, first, second, labels) -> list:
    """Preference pairs as a judge labelled them: label 0 makes the first reply the chosen one, 1 the second."""
    from course_lib.data.preferences import PreferencePair

    labels = np.asarray(labels)
    if not len(prompts) == len(first) == len(second) == len(labels) or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels: expected one 0/1 label per pair ({len(prompts)}), got {labels!r:.80}")
    return [PreferencePair(p, b, a) if lab else PreferencePair(p, a, b)
            for p, a, b, lab in zip(prompts, first, second, labels)]


def labelled_ref_logps(ref_first_second, labels):
    """The reference's ``(ref_chosen, ref_rejected)`` for :func:`labelled_pairs`, from its log-probs of the
    (first, second) replies: one reference pass serves every label set."""
    import torch

    ref_first, ref_second = ref_first_second
    second = torch.as_tensor(np.asarray(labels) == 1)  # (N,) bool
    if second.shape != ref_first.shape:
        raise ValueError(f"labels: expected {tuple(ref_first.shape)[0]} labels, one per pair, got {tuple(second.shape)}")
    return torch.where(second, ref_second, ref_first), torch.where(second, ref_first, ref_second)


def agreement_interval(labels, reference_labels, prompts):
    """How often ``labels`` equal ``reference_labels`` (e.g. the annotator's), with a 95% bootstrap interval over
    the prompts' topics (:func:`~course_lib.llm.evaluation.paired_bootstrap`)."""
    from course_lib.data.prompts import topic_of
    from course_lib.llm.evaluation import paired_bootstrap

    labels, reference_labels = np.asarray(labels), np.asarray(reference_labels)
    if labels.shape != reference_labels.shape or labels.shape != (len(prompts),):
        raise ValueError(f"labels, reference_labels: expected shape ({len(prompts)},) each, got {labels.shape} and "
                         f"{reference_labels.shape}")
    return paired_bootstrap((labels == reference_labels).astype(float), groups=[topic_of(p) for p in prompts])


def rlaif_run(base, tokenizer, prompts, first, second, labels, seed: int, ref_logps=None,
              live: bool | None = False):
    """One DPO run of lesson 13: lesson 12's settings (:func:`dpo_config`) on the pairs as ``labels`` order them,
    from a copy of ``base``, then :func:`evaluate`. ``ref_logps``: the reference's log-probs of the (first,
    second) replies (``reference_logps`` on ``labelled_pairs(..., zeros)``), reordered per label here.
    Returns ``(DPOResult, HeldOutEvaluation, policy)``, as :func:`dpo_run` on :func:`labelled_pairs`."""
    ref = None if ref_logps is None else labelled_ref_logps(ref_logps, labels)
    return dpo_run(base, tokenizer, labelled_pairs(prompts, first, second, labels), seed, ref_logps=ref, live=live)


def rlaif_key(base, data) -> dict:
    """The results key of lesson 13's seeds: :func:`results_key` with the DPO config, the pairs, the judges."""
    from course_lib.llm import constitution_judge
    from course_lib.llm.judge import load_constitution

    return results_key("lesson13_rlaif", base, {
        "config": asdict(dpo_config()), "pairs": len(rlaif_train_pairs(data)), "source": data.source,
        "labels": list(RLAIF_LABELS), "flip_share": RLAIF_FLIP_SHARE,
        "label_seed": [RLAIF_LABEL_SEED, "streams: 0 order, 1 ties, 2 flips"],
        "rule_judge": constitution_judge.VERSION, "constitution": [p.text for p in load_constitution()]})


# ---- lesson 15: reward over-optimisation ---------------------------------------------------------------------
# Fixed before the runs: (a) best-of-n against lesson 10's reward model, N = 64 samples of 16 tokens to every test
# prompt (each prompt's samples seeded by its index, so any subset reproduces the file), n = 1, 2, 4, ..., 64;
# (b) PPO with no KL penalty (the run "HARD" below, the settings of earlier versions of the lesson, unchanged), its
# held-out gold checked on every validation prompt every 4 steps, over seeds 0, 1, 2.

BON_SEED = 15_000
"""Prompt i's best-of-n samples are drawn with ``torch.manual_seed(BON_SEED + i)``."""


def bon_settings() -> dict:
    """Best-of-n's settings: ``samples`` per prompt (N), the ``ns`` reported, ``max_new_tokens``, and how many test
    prompts the lesson samples ``live`` (the rest come from the results file; cpu: the first 8)."""
    n = by_profile(ci=4, cpu=64, gpu=64)
    return {"samples": n, "ns": [2 ** k for k in range(n.bit_length()) if 2 ** k <= n],
            "max_new_tokens": by_profile(ci=8, cpu=16, gpu=32), "live": by_profile(ci=2, cpu=8, gpu=64)}


def bon_samples(lm, tokenizer, reward_model, prompts: list[str], first_index: int = 0):
    """``N`` samples (temperature 1) to each prompt, scored by ``reward_model`` and the gold judge
    (:func:`~course_lib.llm.overoptimisation.best_of_n_samples`, one prompt at a time). Prompt ``i`` (its index in the
    test prompts is ``first_index + i``) is sampled with seed ``BON_SEED + first_index + i``, so any subset of the
    prompts reproduces the others' samples. Returns ``(texts, proxy, gold)``: a list of P lists of N replies (plain
    strings), and two (P, N) arrays."""
    from course_lib.llm.overoptimisation import best_of_n_samples

    settings, judge, score = bon_settings(), gold_judge(), reward_fn(reward_model, tokenizer)
    n = settings["samples"]
    runs = [best_of_n_samples(lm, tokenizer, [prompt], n, score, judge.scores, settings["max_new_tokens"],
                              seed=BON_SEED + first_index + i, chunk=n) for i, prompt in enumerate(prompts)]
    texts = [[str(t) for t in run.texts[0]] for run in runs]
    return texts, np.concatenate([run.proxy for run in runs]), np.concatenate([run.gold for run in runs])


def bon_key(base, reward_model_key: dict) -> dict:
    """The results key of lesson 15's best-of-n samples."""
    return results_key("lesson15_bon", base, {"bon": bon_settings(), "seed": BON_SEED,
                                              "reward_model": reward_model_key})


def hard_config():
    """Lesson 15's over-optimisation run: lesson 11's loop with no KL penalty, lr 4e-4, 2 PPO epochs, 28 steps of
    16-token replies on the top 4 layers (cpu)."""
    from course_lib.llm.ppo import RLHF_PRESETS

    return replace(RLHF_PRESETS[get_profile().name], kl_coef=0.0, max_new_tokens=by_profile(ci=8, cpu=16, gpu=32),
                   learning_rate=by_profile(ci=1e-3, cpu=4e-4, gpu=2e-5), update_epochs=2,
                   steps=by_profile(ci=2, cpu=28, gpu=200), trainable=by_profile(ci="top:1", cpu="top:4", gpu="all"))


CHECK_EVERY = 4
"""Lesson 15 checks held-out gold every this many steps (ci: every step)."""


def hard_run(base, tokenizer, reward_model, seed: int, live: bool | None = False):
    """One seed of lesson 15's run (b): PPO from ``base`` against ``reward_model`` with :func:`hard_config`, the
    gold judge logged on the training samples, and a :class:`~course_lib.llm.overoptimisation.GoldCheck` on the
    validation prompts every :data:`CHECK_EVERY` steps keeping every checked state. Returns
    ``(RLHFResult, GoldCheck, policy)``."""
    import copy

    from course_lib.data.prompts import TRAIN_PROMPTS
    from course_lib.llm.generation import chat_prompt
    from course_lib.llm.overoptimisation import GoldCheck
    from course_lib.llm.ppo import rlhf_ppo, select_trainable
    from course_lib.llm.rollout import PolicyWithValue

    config = hard_config()
    policy = PolicyWithValue(copy.deepcopy(base))
    select_trainable(policy, config.trainable)  # so the checks keep the trained layers only
    checks = GoldCheck(policy, tokenizer, gold_judge().scores, chat_validation_prompts(tokenizer),
                       every=by_profile(ci=1, cpu=CHECK_EVERY, gpu=10), max_new_tokens=config.max_new_tokens,
                       keep_all=True)
    checks.check(0)
    run = rlhf_ppo(policy, tokenizer, [chat_prompt(tokenizer, p) for p in TRAIN_PROMPTS], reward_fn(reward_model,
                   tokenizer), config, seed=seed, reference=base, gold_fn=checks, live=live)
    return run, checks, policy


def hard_evaluate(lm, tokenizer, base, reward_model) -> HeldOutEvaluation:
    """Lesson 15's test evaluation: one reply of :func:`hard_config`'s length per test prompt, proxy and gold."""
    return evaluate_policy(lm, tokenizer, chat_test_prompts(tokenizer), gold_judge().scores, base, per_prompt=1,
                           max_new_tokens=hard_config().max_new_tokens,
                           proxy_fn=reward_fn(reward_model, tokenizer), seed=EVAL_SEED)


def hard_history(run, checks) -> dict:
    """What a plot of run (b) needs, JSON-able: per step proxy, training-sample gold and KL; per check its step, its
    mean gold and every reply's gold."""
    steps, proxy = run.logger.as_arrays("rlhf/reward")
    return {"steps": [int(s) for s in steps], "proxy": [float(v) for v in proxy],
            "gold": [float(v) for v in run.logger.as_arrays("rlhf/gold_score")[1]],
            "kl": [float(v) for v in run.logger.as_arrays("rlhf/kl")[1]],
            "check_steps": [int(s) for s in checks.steps], "check_gold": [float(v) for v in checks.scores],
            "check_per_reply": [[float(v) for v in r] for r in checks.per_reply]}


def gold_fell(history: dict) -> dict:
    """Did held-out gold peak and fall? The protocol's test, written before the runs: the best check is not the last,
    and the last check's gold is below the best's by more than 2 standard errors of their paired difference (over the
    check replies). Returns ``{"best_step", "drop", "se", "fell"}``."""
    scores = np.asarray(history["check_gold"], dtype=float)
    best = int(np.argmax(scores))
    diff = np.asarray(history["check_per_reply"][best]) - np.asarray(history["check_per_reply"][-1])
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
    drop = float(diff.mean())
    return {"best_step": int(history["check_steps"][best]), "drop": drop, "se": se,
            "fell": bool(best != len(scores) - 1 and drop > 2 * se)}


def hard_key(base, reward_model_key: dict) -> dict:
    """The results key of lesson 15's run (b) seeds."""
    return results_key("lesson15_hard", base, {"config": asdict(hard_config()), "check_every": CHECK_EVERY,
                                               "reward_model": reward_model_key})


# ---- the results file of the further seeds ------------------------------------------------------------------

def results_dir() -> Path:
    """``course_lib/data/results/``: the committed results of the seeds a lesson does not run live."""
    return Path(__file__).resolve().parents[1] / "data" / "results"


def results_key(name: str, base, extra: dict | None = None) -> dict:
    """What a results file depends on: the experiment, the profile, the gold judge's version, the model, the
    evaluation settings, the test prompts, and ``extra`` (e.g. the training config, the reward model's key)."""
    from course_lib.data.annotators import SimulatedAnnotator
    from course_lib.data.prompts import TEST_PROMPTS
    from course_lib.llm.feedback import model_fingerprint

    return json.loads(json.dumps({"experiment": name, "profile": get_profile().name, "gold": SimulatedAnnotator.VERSION,
                                  "model": model_fingerprint(base), "eval": {**eval_settings(), "seed": EVAL_SEED},
                                  "test_prompts": len(TEST_PROMPTS), **(extra or {})}, default=str))


def rlhf_key(base, reward_model_key: dict) -> dict:
    """The results key of lesson 11's seeds: :func:`results_key` with the RLHF config and the reward model's key."""
    return results_key("lesson11_rlhf", base, {"config": asdict(rlhf_config()), "reward_model": reward_model_key})


def dpo_key(base, data) -> dict:
    """The results key of lesson 12's seeds: :func:`results_key` with the DPO config and the pairs' source."""
    return results_key("lesson12_dpo", base, {"config": asdict(dpo_config()), "pairs": len(dpo_train_pairs(data)),
                                              "source": data.source})


def _record(ev: HeldOutEvaluation) -> dict:
    return {"prompts": ev.prompts, "texts": [str(t) for t in ev.texts], "gold": ev.gold.tolist(),
            "proxy": None if ev.proxy is None else ev.proxy.tolist(), "kl": ev.kl.tolist(),
            "lengths": ev.lengths.tolist(), "ended": ev.ended.tolist()}


def _evaluation(record: dict) -> HeldOutEvaluation:
    from course_lib.data.preferences import Reply

    # the texts come back as replies that know whether they finished (their token ids are not stored)
    texts = [Reply(t, (), bool(e)) for t, e in zip(record["texts"], record["ended"])]
    return HeldOutEvaluation(record["prompts"], texts, np.asarray(record["gold"], dtype=float),
                             None if record["proxy"] is None else np.asarray(record["proxy"], dtype=float),
                             np.asarray(record["kl"], dtype=float), np.asarray(record["lengths"]),
                             np.asarray(record["ended"], dtype=bool))


def save_seed_results(key: dict, evaluations: dict[str, HeldOutEvaluation], start: HeldOutEvaluation | None,
                      extra: dict | None = None, merge: bool = False) -> Path:
    """Write the evaluations of further seeds, by name (``"seed 1"``, ``"RL seed 2"``), and the start model's (to
    check a reader's own; None when a file holds samples only, as best-of-n's) under ``key``, to ``results_dir()/<experiment>_<profile>.json``; ``extra`` (JSON-able,
    e.g. per-step histories of each seed) is stored beside them and read back by :func:`load_seed_extra`.

    ``merge=True`` adds to a file already written under the same key (seeds run by separate processes): its runs are
    kept unless named again, and each dict in its ``extra`` is updated with the new one's entries. A file under
    another key is replaced, as without ``merge``. Concurrent writers must not merge at the same moment (no lock)."""
    path = results_dir() / f"{key['experiment']}_{key['profile']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs, extra = {name: _record(ev) for name, ev in evaluations.items()}, dict(extra or {})
    if merge and path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("key") == key:
            runs = {**old["runs"], **runs}
            for name, value in (old.get("extra") or {}).items():
                extra[name] = {**value, **extra[name]} if isinstance(value, dict) and isinstance(
                    extra.get(name), dict) else extra.get(name, value)
    body = {"key": key, "start": None if start is None else _record(start), "runs": runs, "extra": extra}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_seed_results(key: dict) -> tuple[dict[str, HeldOutEvaluation], HeldOutEvaluation | None, str]:
    """The further seeds' evaluations for ``key``: ``(name -> evaluation, the file's start evaluation, message)``.

    Empty, with a message that says why, when there is no file for this experiment and profile or its key differs
    (naming the first field that does): the lesson then reports its live seed only and says so.
    """
    path = results_dir() / f"{key['experiment']}_{key['profile']}.json"
    if not path.is_file():
        return {}, None, f"no results file {path.name} for the {key['profile']} profile: live seed only"
    body = json.loads(path.read_text(encoding="utf-8"))
    if body.get("key") != key:
        stored = body.get("key") or {}
        field = next((k for k in key if stored.get(k) != key[k]), "key")
        return {}, None, (f"{path.name} was written for another {field} ({stored.get(field)!r:.80}): live seed only; "
                          f"run `make seeds` to regenerate it")
    runs = {name: _evaluation(r) for name, r in body["runs"].items()}
    start = None if body["start"] is None else _evaluation(body["start"])
    return runs, start, f"{path.name}: {', '.join(runs)}, written by tools/run_seeds.py"


def load_seed_extra(key: dict) -> dict:
    """The ``extra`` a results file stores beside its evaluations, when its key is ``key``; else ``{}``."""
    path = results_dir() / f"{key['experiment']}_{key['profile']}.json"
    if not path.is_file():
        return {}
    body = json.loads(path.read_text(encoding="utf-8"))
    return body.get("extra") or {} if body.get("key") == key else {}


# ---- lesson 14: GRPO with verifiable rewards on one-digit arithmetic ------------------------------------------
# Fixed before the runs: GRPO_PRESETS[profile] unchanged (cpu: 14 steps of 4 training questions x G = 8 answers of at
# most 24 tokens, top 6 layers, lr 5e-5, one pass per batch, no KL), reward arithmetic_reward, seeds 0, 1, 2; each
# trained model answers every held-out question per_prompt times (seed EVAL_SEED, as the start model); the gains in
# reward and accuracy get a paired_bootstrap interval whose unit is the held-out question, over the seeds.

GRPO_EVAL_CHUNK = 32
"""Replies sampled per batch in lesson 14's evaluation (part of its random stream: changing it changes the replies)."""


def grpo_config():
    """Lesson 14's settings: the profile's ``GRPO_PRESETS``, unchanged."""
    from course_lib.llm.grpo import GRPO_PRESETS

    return GRPO_PRESETS[get_profile().name]


def grpo_questions() -> list:
    """Lesson 14's held-out questions: the 32 of ``HELD_OUT_QUESTIONS``, never trained on (ci: the first 4)."""
    from course_lib.data.arithmetic import HELD_OUT_QUESTIONS

    return by_profile(ci=HELD_OUT_QUESTIONS[:4], cpu=list(HELD_OUT_QUESTIONS))


def grpo_eval_settings() -> dict:
    """Lesson 14's evaluation: replies per held-out question, their token limit (the training limit), seed, chunk."""
    return {"questions": [q.text for q in grpo_questions()], "per_prompt": eval_settings()["per_prompt"],
            "max_new_tokens": grpo_config().max_new_tokens, "seed": EVAL_SEED, "chunk": GRPO_EVAL_CHUNK}


def grpo_evaluate(lm, tokenizer, reference) -> HeldOutEvaluation:
    """Lesson 14's evaluation: :func:`~course_lib.llm.evaluation.evaluate_policy` on the chat-formatted held-out
    questions with ``arithmetic_reward`` as the score (``.gold``), KL to ``reference``, :func:`grpo_eval_settings`."""
    from course_lib.data.arithmetic import arithmetic_reward
    from course_lib.llm.generation import chat_prompt

    settings = grpo_eval_settings()
    prompts = [chat_prompt(tokenizer, text) for text in settings["questions"]]
    return evaluate_policy(lm, tokenizer, prompts, arithmetic_reward, reference, per_prompt=settings["per_prompt"],
                           max_new_tokens=settings["max_new_tokens"], seed=settings["seed"], chunk=settings["chunk"])


def grpo_scores(ev: HeldOutEvaluation) -> dict[str, np.ndarray]:
    """Each reply's ``reward`` (arithmetic_reward, stored as ``ev.gold``), ``accuracy`` (right, in the form) and
    ``format`` (in the form), recomputed from the texts; each (n,)."""
    from course_lib.data.arithmetic import correctness_reward, format_reward

    return {"reward": np.asarray(ev.gold, dtype=float),
            "accuracy": np.asarray(correctness_reward(ev.prompts, ev.texts), dtype=float),
            "format": np.asarray(format_reward(ev.prompts, ev.texts), dtype=float)}


GRPO_CURVES = ("grpo/reward_mean", "grpo/accuracy", "grpo/format_rate", "grpo/zero_std_share",
               "grpo/response_length", "losses/policy_loss")
"""The per-step metrics of lesson 14's plot, stored per seed in the results file's ``extra``."""


def grpo_run(base, tokenizer, seed: int, live: bool | None = False):
    """One seed of lesson 14: GRPO from a copy of ``base`` on every training question with :func:`grpo_config` and
    ``arithmetic_reward`` (accuracy and format rate logged, not trained on), then :func:`grpo_evaluate` against
    ``base``. Returns ``(GRPOResult, HeldOutEvaluation, policy)``."""
    import copy

    from course_lib.data.arithmetic import TRAIN_QUESTIONS, arithmetic_reward, correctness_reward, format_reward
    from course_lib.llm.generation import chat_prompt
    from course_lib.llm.grpo import grpo

    policy = copy.deepcopy(base)  # trained in place; base stays the starting model
    run = grpo(policy, tokenizer, [chat_prompt(tokenizer, q.text) for q in TRAIN_QUESTIONS], arithmetic_reward,
               grpo_config(), seed=seed, extra_metrics={"accuracy": correctness_reward, "format_rate": format_reward},
               live=live)
    return run, grpo_evaluate(policy, tokenizer, base), policy


def grpo_history(run) -> dict:
    """The curves of :data:`GRPO_CURVES` of one run, JSON-able: ``{"steps": [...], name: [...]}``."""
    steps, _ = run.logger.as_arrays(GRPO_CURVES[0])
    return {"steps": [int(s) for s in steps],
            **{name: [float(v) for v in run.logger.as_arrays(name)[1]] for name in GRPO_CURVES}}


def grpo_key(base) -> dict:
    """The results key of lesson 14's seeds: :func:`results_key` with the GRPO config and the evaluation settings."""
    from course_lib.data.arithmetic import FORMAT_WEIGHT

    return results_key("lesson14_grpo", base, {"config": asdict(grpo_config()), "grpo_eval": grpo_eval_settings(),
                                               "reward": {"name": "arithmetic_reward", "format_weight": FORMAT_WEIGHT}})
