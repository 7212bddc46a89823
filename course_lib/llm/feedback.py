"""Preference data from the policy's own samples, judged by an annotator (lesson 10).

The reward model must rank what the policy will produce during RLHF, so its training data
are the policy's own responses (Ouyang et al. 2022, Section 3.5; Stiennon et al. 2020):
for each prompt sample K responses, let the annotator rank them, and turn each ranking
into preference pairs (:func:`course_lib.data.annotators.pairs_from_ranking`).
"""

from __future__ import annotations

from typing import Sequence

from course_lib.data.annotators import SimulatedAnnotator, pairs_from_ranking
from course_lib.data.preferences import PreferencePair, pair_from_record, pair_record
from course_lib.llm.rollout import sample_responses


def collect_preferences(model, tokenizer, prompts: Sequence[str], annotator: SimulatedAnnotator,
                        responses_per_prompt: int = 4, rounds: int = 1, max_new_tokens: int = 24,
                        temperature: float = 1.0, keep: str = "best_vs_worst", batch_size: int = 64,
                        progress: bool = True) -> tuple[list[PreferencePair], list[list[str]]]:
    """Sample K responses per prompt per round, have the annotator rank each group, return pairs.

    Args:
        model, tokenizer: the policy (a causal LM) and its left-padding tokenizer.
        prompts: formatted prompts (:func:`~course_lib.llm.generation.chat_prompt`).
        annotator: ranks each group of K responses (:meth:`SimulatedAnnotator.rank`).
        responses_per_prompt: K >= 2 responses per prompt and round.
        rounds: how many groups per prompt (each a fresh set of K samples).
        keep: ``"best_vs_worst"`` (one pair per group) or ``"all"`` (every pair of the ranking).
        batch_size: sequences sampled at once.

    Returns:
        ``(pairs, groups)``: the preference pairs, and every group's K responses (for inspection),
        in the order prompts x rounds.
    """
    from tqdm.auto import tqdm

    for name, value, low in (("responses_per_prompt", responses_per_prompt, 2), ("rounds", rounds, 1),
                             ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"prompts: expected a non-empty list of non-empty strings, got {prompts!r:.80}")
    jobs = [p for _ in range(rounds) for p in prompts for _ in range(responses_per_prompt)]  # K copies per group
    texts: list[str] = []
    for start in tqdm(range(0, len(jobs), batch_size), desc="sampling responses", disable=not progress):
        texts += sample_responses(model, tokenizer, jobs[start:start + batch_size], max_new_tokens, temperature).texts
    pairs, groups = [], []
    for g in range(0, len(jobs), responses_per_prompt):
        group = texts[g:g + responses_per_prompt]
        groups.append(group)
        pairs += pairs_from_ranking(jobs[g], group, annotator.rank(group), keep=keep)
    return pairs, groups


# ---- the course's reward model: built in lesson 10, used from lesson 11 on ----------------------

PREFERENCE_DATA: dict[str, dict] = {
    # The test suite: one group of short responses for a few prompts (the model may be the tiny one).
    "ci": {"prompts": 8, "held_out_prompts": 4, "rounds": 1, "held_out_rounds": 1, "max_new_tokens": 8},
    # A laptop CPU: 5 groups of K = 4 responses per training prompt (320 pairs), 5 per held-out prompt (80).
    "cpu": {"prompts": None, "held_out_prompts": None, "rounds": 5, "held_out_rounds": 5, "max_new_tokens": 24},
    # A GPU: 3.2 times the training pairs of the cpu profile.
    "gpu": {"prompts": None, "held_out_prompts": None, "rounds": 16, "held_out_rounds": 8, "max_new_tokens": 24},
}
"""Per profile: how many training and held-out prompts (None: all of them), groups per training prompt,
groups per held-out prompt, response length in tokens."""


def reward_model_path(model, profile: str | None = None):
    """Where lesson 10 saves the course's reward model built on ``model`` for a profile (default: the active one).

    The name holds the profile and the model's shape (layers x width), so the reward model of one
    base model is never loaded onto another.
    """
    from course_lib.llm.models import cache_root
    from course_lib.utils import get_profile

    shape = f"{model.config.num_hidden_layers}x{model.config.hidden_size}"
    return cache_root() / "runs" / f"reward_model_{profile or get_profile().name}_{shape}.pt"


def preferences_path(model, profile: str | None = None, seed: int = 0):
    """Where :func:`course_preferences` caches its pairs for ``model``, a profile (default: the active one) and a seed.

    Next to :func:`reward_model_path`, named like it (profile, the model's layers x width) plus the seed;
    the file also records a fingerprint of the model's weights and the sizes it was built with, and a
    file whose record differs is rebuilt, never reused.
    """
    from course_lib.llm.models import cache_root
    from course_lib.utils import get_profile

    shape = f"{model.config.num_hidden_layers}x{model.config.hidden_size}"
    return cache_root() / "runs" / f"preferences_{profile or get_profile().name}_{shape}_seed{seed}.json"


def model_fingerprint(model) -> str:
    """A short hash of the model's shape and of a slice of its input embeddings and top layer: two models
    with different weights (another checkpoint, another random tiny model) get different fingerprints."""
    import hashlib

    import torch

    h = hashlib.sha256(repr((type(model).__name__, model.config.num_hidden_layers, model.config.hidden_size,
                             model.config.vocab_size)).encode())
    tensors = [model.get_input_embeddings().weight, *model.model.layers[-1].parameters()]
    with torch.no_grad():
        for t in tensors:
            h.update(t.detach().flatten()[:4096].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


PREFERENCES_FORMAT = 2
"""Version of :func:`course_preferences`' records (2: each reply's token ids and finished flag kept). Part
of the cache's key, with the gold judge's version (:attr:`SimulatedAnnotator.VERSION`): a file written
in another format or labelled by another judge is refused, said so, and rebuilt."""

REWARD_MODEL_FORMAT = 2
"""Version of the course's reward model (2: scored on token ids, EOS included, at the EOS of a finished reply)."""


def _stale(path, stored: dict, key: dict) -> str:
    """A one-line reason why the cache file at ``path`` does not match ``key``."""
    field = next((k for k in key if stored.get(k) != key[k]), "key")
    return (f"{path} was built for {field}={stored.get(field)!r}, this run needs {field}={key.get(field)!r}: "
            f"rebuilding it")


def preferences_key(model, profile: str, seed: int) -> dict:
    """What :func:`course_preferences`' data depend on: format, gold judge, profile, seed, sizes, model weights."""
    return {"format": PREFERENCES_FORMAT, "gold": SimulatedAnnotator.VERSION, "profile": profile, "seed": seed,
            "sizes": PREFERENCE_DATA[profile], "model": model_fingerprint(model)}


def course_preferences(model, tokenizer, profile: str | None = None, seed: int = 0, progress: bool = True,
                       cache: bool = True, path=None):
    """Lesson 10's data: best-vs-worst pairs of K = 4 samples per prompt, ranked by the simulated annotator.

    Returns ``(train_pairs, held_out_pairs, held_out_groups)``: training pairs from
    :data:`~course_lib.data.prompts.TRAIN_PROMPTS`, held-out pairs (and their groups of K responses)
    from :data:`~course_lib.data.prompts.HELD_OUT_PROMPTS`, sizes from :data:`PREFERENCE_DATA`.

    Sampling them takes minutes in the ``cpu`` profile (about 400 s on 2 cores), so with ``cache=True``
    the result is stored as JSON at ``path`` (default :func:`preferences_path`) the first time, written
    atomically (a temporary file, then a rename), and loaded from there afterwards. The file records
    :func:`preferences_key` (format, gold judge's version, profile, seed, sizes and :func:`model_fingerprint`);
    if any differs from this call's, a warning says which, and the data are sampled again and the file replaced.
    Sampling is seeded here, so a cache hit and a cache miss leave the same random state behind.
    """
    import json
    import os
    import tempfile
    import warnings
    from pathlib import Path

    from course_lib.data.preferences import Reply
    from course_lib.data.prompts import HELD_OUT_PROMPTS, TRAIN_PROMPTS
    from course_lib.llm.generation import chat_prompt
    from course_lib.utils import get_profile, set_seed

    profile = profile or get_profile().name
    sizes = PREFERENCE_DATA[profile]
    key = preferences_key(model, profile, seed)
    path = Path(path) if path is not None else preferences_path(model, profile, seed)
    if cache and path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            stored = {}
        if stored.get("key") == key:
            train = [pair_from_record(r, str(path)) for r in stored["train"]]
            held = [pair_from_record(r, str(path)) for r in stored["held_out"]]
            groups = [[Reply(r["text"], r["ids"], r["finished"]) for r in g] for g in stored["held_out_groups"]]
            return train, held, groups
        warnings.warn(_stale(path, stored.get("key") or {}, key), stacklevel=2)
    set_seed(seed)
    annotator = SimulatedAnnotator(temperature=0.1, seed=seed)
    train_prompts = TRAIN_PROMPTS[:sizes["prompts"]]
    held_prompts = HELD_OUT_PROMPTS[:sizes["held_out_prompts"]]
    train, _ = collect_preferences(model, tokenizer, [chat_prompt(tokenizer, p) for p in train_prompts], annotator,
                                   rounds=sizes["rounds"], max_new_tokens=sizes["max_new_tokens"], progress=progress)
    held, groups = collect_preferences(model, tokenizer, [chat_prompt(tokenizer, p) for p in held_prompts],
                                       annotator, rounds=sizes["held_out_rounds"],
                                       max_new_tokens=sizes["max_new_tokens"], progress=progress)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"key": key, "train": [pair_record(p) for p in train], "held_out": [pair_record(p) for p in held],
                  "held_out_groups": [[{"text": str(r), "ids": list(r.ids), "finished": r.finished} for r in g]
                                      for g in groups]}
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, ensure_ascii=False)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual permissions
            os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return train, held, groups


def prepare_reward_model(model, tokenizer, profile: str | None = None, seed: int = 0, progress: bool = True,
                         path=None):
    """The course's reward model: lesson 10's saved one if there is one, else built the same way and saved.

    Building it: :func:`course_preferences`, then :func:`~course_lib.llm.reward_model.train_reward_model`
    with ``REWARD_PRESETS[profile]`` on a copy of ``model`` (the head seeded with ``seed``), saved to ``path``
    (default :func:`reward_model_path`) with its key: :data:`REWARD_MODEL_FORMAT`, the trainer's settings and
    :func:`preferences_key`. A saved file with another key (another format, gold judge, base model, ...) is
    refused with a warning that names the difference, and rebuilt. Returns a frozen
    :class:`~course_lib.llm.reward_model.RewardModel` on ``model``'s device.
    """
    import copy
    import dataclasses
    import warnings
    from pathlib import Path

    from course_lib.llm.reward_model import (
        REWARD_PRESETS,
        RewardModel,
        StaleRewardModel,
        load_reward_model,
        save_reward_model,
        train_reward_model,
    )
    from course_lib.utils import get_profile

    profile = profile or get_profile().name
    path = Path(path) if path is not None else reward_model_path(model, profile)
    device = next(model.parameters()).device
    config = REWARD_PRESETS[profile]
    key = {"format": REWARD_MODEL_FORMAT, "config": dataclasses.asdict(config),
           "preferences": preferences_key(model, profile, seed)}
    if path.is_file():
        try:
            return load_reward_model(path, copy.deepcopy(model), key=key).to(device)
        except StaleRewardModel as err:
            warnings.warn(f"{err}; rebuilding it", stacklevel=2)
    train, held, _ = course_preferences(model, tokenizer, profile, seed, progress)
    rm = RewardModel(copy.deepcopy(model), seed=seed)
    train_reward_model(rm, tokenizer, train, held, config, seed=seed, progress=progress, live=False)
    save_reward_model(rm, path, config.trainable, key=key)
    rm.requires_grad_(False)
    return rm.eval()
