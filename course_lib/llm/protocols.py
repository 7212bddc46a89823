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

    return by_profile(ci=replace(RLHF_PRESETS["cpu"], steps=1, batch_size=4, max_new_tokens=4, ppo_epochs=1),
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


def save_seed_results(key: dict, evaluations: dict[str, HeldOutEvaluation], start: HeldOutEvaluation,
                      extra: dict | None = None) -> Path:
    """Write the evaluations of further seeds, by name (``"seed 1"``, ``"RL seed 2"``), and the start model's (to
    check a reader's own) under ``key``, to ``results_dir()/<experiment>_<profile>.json``; ``extra`` (JSON-able,
    e.g. per-step histories of each seed) is stored beside them and read back by :func:`load_seed_extra`."""
    path = results_dir() / f"{key['experiment']}_{key['profile']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"key": key, "start": _record(start), "runs": {name: _record(ev) for name, ev in evaluations.items()},
            "extra": extra or {}}
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
    return runs, _evaluation(body["start"]), f"{path.name}: {', '.join(runs)}, written by tools/run_seeds.py"


def load_seed_extra(key: dict) -> dict:
    """The ``extra`` a results file stores beside its evaluations, when its key is ``key``; else ``{}``."""
    path = results_dir() / f"{key['experiment']}_{key['profile']}.json"
    if not path.is_file():
        return {}
    body = json.loads(path.read_text(encoding="utf-8"))
    return body.get("extra") or {} if body.get("key") == key else {}
