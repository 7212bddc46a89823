"""Preference data from the policy's own samples, judged by an annotator (lesson 10).

The reward model must rank what the policy will produce during RLHF, so its training data
are the policy's own responses (Ouyang et al. 2022, Section 3.5; Stiennon et al. 2020):
for each prompt sample K responses, let the annotator rank them, and turn each ranking
into preference pairs (:func:`course_lib.data.annotators.pairs_from_ranking`).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from course_lib.data.annotators import SimulatedAnnotator, pairs_from_ranking
from course_lib.data.preferences import PreferencePair, pair_from_record, pair_record
from course_lib.llm.rollout import sample_responses
from course_lib.utils.validation import check_int


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
        check_int(name, value, low)
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
        pairs += pairs_from_ranking(jobs[g], group, annotator.rank(jobs[g], group), keep=keep)
    return pairs, groups


# ---- the course's preference data: shipped for the cpu and gpu profiles, sampled live in ci ----------

SPLITS = ("train", "validation", "test")

DATASET_SIZES = {"train": {"rounds": 2}, "validation": {"rounds": 2}, "test": {"rounds": 2}}
"""Groups of K = 4 replies per prompt in each split of the shipped dataset; every pair of a ranked group is kept."""

DATASET_MAX_NEW_TOKENS = 24
"""The replies' token limit: the ``cpu`` presets' (a longer reply is cut, and the rubric marks it unfinished)."""

PREFERENCE_DATA: dict[str, dict] = {
    # The test suite: one group of short replies for a few prompts of each split (the model may be the tiny one).
    "ci": {"prompts": {"train": 8, "validation": 4, "test": 4}, "rounds": 1, "max_new_tokens": 8},
    # A laptop CPU and a GPU: the shipped dataset (course_lib/data/preferences/), every prompt of each split.
    "cpu": {"prompts": None, "rounds": None, "max_new_tokens": DATASET_MAX_NEW_TOKENS},
    "gpu": {"prompts": None, "rounds": None, "max_new_tokens": DATASET_MAX_NEW_TOKENS},
}
"""Per profile: prompts per split (None: all) and groups per prompt (None: :data:`DATASET_SIZES`); with both None
the shipped files are read when they were sampled from this model, else sampled and cached the same way."""


class PreferenceData(NamedTuple):
    """Lesson 10's preference pairs, one list per prompt split (the pairs of one ranked group next to each other)."""

    train: list[PreferencePair]
    validation: list[PreferencePair]
    test: list[PreferencePair]
    source: str
    """Where they came from: the shipped files, this machine's cache, or sampled just now."""


def dataset_dir():
    """Where the course ships its preference dataset: ``course_lib/data/preferences/`` (JSONL files and a manifest)."""
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "data" / "preferences"


def dataset_key(model, seed: int = 0) -> dict:
    """What the shipped dataset depends on: its format, the gold judge's version, the sizes, the seed, the model."""
    return {"format": PREFERENCES_FORMAT, "gold": SimulatedAnnotator.VERSION, "sizes": DATASET_SIZES,
            "max_new_tokens": DATASET_MAX_NEW_TOKENS, "seed": seed, "model": model_fingerprint(model)}


def _split_prompts(profile: str | None) -> dict[str, list[str]]:
    from course_lib.data import prompts as course_prompts

    every = {"train": course_prompts.TRAIN_PROMPTS, "validation": course_prompts.VALIDATION_PROMPTS,
             "test": course_prompts.TEST_PROMPTS}
    counts = (PREFERENCE_DATA[profile]["prompts"] if profile else None) or {}
    return {split: every[split][:counts.get(split)] for split in SPLITS}


def sample_preference_splits(model, tokenizer, prompts: dict, rounds: dict, max_new_tokens: int, seed: int = 0,
                             progress: bool = True) -> dict[str, list[PreferencePair]]:
    """For each split: K = 4 replies per prompt and round, ranked by ``SimulatedAnnotator(temperature=0.05)``, every
    pair of each ranking kept (:func:`collect_preferences`, ``keep="all"``). Split k is seeded with ``seed + k``
    (sampling and the annotator's noise), so one split can be regenerated alone and gives the same pairs."""
    from course_lib.llm.generation import chat_prompt
    from course_lib.utils import set_seed

    out = {}
    for k, split in enumerate(SPLITS):
        set_seed(seed + k)
        annotator = SimulatedAnnotator(temperature=0.05, seed=seed + k)
        out[split], _ = collect_preferences(model, tokenizer, [chat_prompt(tokenizer, p) for p in prompts[split]],
                                            annotator, rounds=rounds[split], max_new_tokens=max_new_tokens,
                                            keep="all", progress=progress)
    return out


def write_preference_dataset(model, tokenizer, out_dir=None, seed: int = 0, progress: bool = True) -> dict:
    """Sample and label the course's shipped preference dataset: ``train``, ``validation`` and ``test`` JSONL files.

    Every prompt of each split (:mod:`course_lib.data.prompts`), :data:`DATASET_SIZES` rounds of K = 4 replies
    at temperature 1 (at most :data:`DATASET_MAX_NEW_TOKENS` tokens), through :func:`sample_preference_splits`.
    The same model, torch build and seed give the same files. Records are :func:`pair_record` s (TRL's
    ``prompt``, ``chosen``, ``rejected`` plus token ids and finished flags), one per line; ``manifest.json``
    records the key (:func:`dataset_key`) and the counts. Returns the manifest.
    """
    import json
    import platform
    from pathlib import Path

    import torch

    from course_lib.data.preferences import save_pairs

    out = dataset_dir() if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prompts = _split_prompts(None)
    splits = sample_preference_splits(model, tokenizer, prompts, {k: v["rounds"] for k, v in DATASET_SIZES.items()},
                                      DATASET_MAX_NEW_TOKENS, seed, progress)
    counts = {split: {"prompts": len(prompts[split]), "rounds": DATASET_SIZES[split]["rounds"],
                      "pairs": save_pairs(pairs, out / f"{split}.jsonl")} for split, pairs in splits.items()}
    manifest = {"key": dataset_key(model, seed), "counts": counts, "torch": torch.__version__,
                "python": platform.python_version(),
                "command": f"python tools/make_preference_data.py --seed {seed}"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def shipped_preferences(model) -> PreferenceData | None:
    """The shipped dataset's pairs when it was sampled from ``model`` (its manifest's key matches), else None."""
    import json

    from course_lib.data.preferences import load_pairs

    folder = dataset_dir()
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("key") != dataset_key(model, manifest.get("key", {}).get("seed", 0)):
        return None
    splits = [load_pairs(folder / f"{split}.jsonl")[0] for split in SPLITS]
    return PreferenceData(*splits, source=f"shipped: course_lib/data/preferences/ ({manifest['command']})")


def group_runs(pairs: Sequence[PreferencePair]) -> list[tuple[str, list[str]]]:
    """The ranked groups behind ``keep="all"`` pairs: each run of neighbouring pairs with one prompt, as
    ``(prompt, distinct replies in order of first appearance)``."""
    from course_lib.data.preferences import reply_key

    groups: list[tuple[str, list[str]]] = []
    seen: list[set] = []
    for i, pair in enumerate(pairs):
        if not groups or pair.prompt != groups[-1][0] or (i and pairs[i - 1].prompt != pair.prompt):
            groups.append((pair.prompt, []))
            seen.append(set())
        for reply in (pair.chosen, pair.rejected):
            if reply_key(reply) not in seen[-1]:
                seen[-1].add(reply_key(reply))
                groups[-1][1].append(reply)
    return groups


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
    """Where :func:`course_preferences` caches pairs it sampled for ``model``, a profile (default: the active one)
    and a seed.

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


PREFERENCES_FORMAT = 3
"""Version of the preference records and their splits (3: train, validation and test splits by topic, every pair
of a ranked group kept; 2: each reply's token ids and finished flag kept). Part of every cache's key, with the
gold judge's version (:attr:`SimulatedAnnotator.VERSION`): a file written in another format or labelled by
another judge is refused, said so, and rebuilt."""

REWARD_MODEL_FORMAT = 3
"""Version of the course's reward model (3: trained on the training split, its epoch chosen on the validation
split; 2: scored on token ids, EOS included, at the EOS of a finished reply)."""


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
                       cache: bool = True, path=None) -> PreferenceData:
    """Lesson 10's data: pairs of the policy's own replies, ranked by the simulated annotator, in three splits.

    In the ``cpu`` and ``gpu`` profiles with ``seed=0`` these are the shipped files
    (:func:`shipped_preferences`, written by :func:`write_preference_dataset`) when they were sampled from
    ``model``. Otherwise (the ``ci`` profile, another model, another seed) they are sampled now with
    :func:`sample_preference_splits` (sizes from :data:`PREFERENCE_DATA`) and, with ``cache=True``, stored as
    JSON at ``path`` (default :func:`preferences_path`), written atomically (a temporary file, then a
    rename), and loaded from there afterwards. The file records :func:`preferences_key` (format, gold
    judge's version, profile, seed, sizes and :func:`model_fingerprint`); if any differs from this call's,
    a warning says which, and the data are sampled again and the file replaced. Sampling is seeded here,
    so a cache hit and a cache miss leave the same random state behind.
    """
    import json
    import os
    import tempfile
    import warnings
    from pathlib import Path

    from course_lib.utils import get_profile, set_seed

    profile = profile or get_profile().name
    sizes = PREFERENCE_DATA[profile]
    if sizes["prompts"] is None and seed == 0:
        shipped = shipped_preferences(model)
        if shipped is not None:
            set_seed(seed + len(SPLITS))  # the random state a sampling run would leave behind, near enough
            return shipped
        warnings.warn("the shipped preference dataset (course_lib/data/preferences/) was sampled from another model "
                      "or labelled by another annotator version: sampling this model's pairs now (about 10 minutes "
                      "on 2 CPU cores), then caching them", stacklevel=2)
    key = preferences_key(model, profile, seed)
    path = Path(path) if path is not None else preferences_path(model, profile, seed)
    if cache and path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            stored = {}
        if stored.get("key") == key:
            set_seed(seed + len(SPLITS))
            return PreferenceData(*([pair_from_record(r, str(path)) for r in stored[split]] for split in SPLITS),
                                  source=f"cached: {path.name}")
        warnings.warn(_stale(path, stored.get("key") or {}, key), stacklevel=2)
    rounds = {split: sizes["rounds"] or DATASET_SIZES[split]["rounds"] for split in SPLITS}
    splits = sample_preference_splits(model, tokenizer, _split_prompts(profile), rounds, sizes["max_new_tokens"],
                                      seed, progress)
    set_seed(seed + len(SPLITS))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"key": key, **{split: [pair_record(p) for p in splits[split]] for split in SPLITS}}
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
    return PreferenceData(*(splits[split] for split in SPLITS), source="sampled now")


def reward_model_key(model, profile: str, seed: int = 0) -> dict:
    """What the course's reward model depends on: :data:`REWARD_MODEL_FORMAT`, the trainer's settings and
    :func:`preferences_key`. Lesson 10 saves with it, :func:`prepare_reward_model` checks it."""
    import dataclasses

    from course_lib.llm.reward_model import REWARD_PRESETS

    return {"format": REWARD_MODEL_FORMAT, "config": dataclasses.asdict(REWARD_PRESETS[profile]),
            "preferences": preferences_key(model, profile, seed)}


def prepare_reward_model(model, tokenizer, profile: str | None = None, seed: int = 0, progress: bool = True,
                         path=None):
    """The course's reward model: lesson 10's saved one if there is one, else built the same way and saved.

    Building it: :func:`course_preferences`, then :func:`~course_lib.llm.reward_model.train_reward_model`
    with ``REWARD_PRESETS[profile]`` on a copy of ``model`` (the head seeded with ``seed``) on the training pairs,
    the epoch chosen on the validation pairs (``keep_best=True``), saved to ``path`` (default
    :func:`reward_model_path`) with :func:`reward_model_key`. A saved file with another key (another format, gold judge, base model, ...) is
    refused with a warning that names the difference, and rebuilt. Returns a frozen
    :class:`~course_lib.llm.reward_model.RewardModel` on ``model``'s device.
    """
    import copy
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
    key = reward_model_key(model, profile, seed)
    if path.is_file():
        try:
            return load_reward_model(path, copy.deepcopy(model), key=key).to(device)
        except StaleRewardModel as err:
            warnings.warn(f"{err}; rebuilding it", stacklevel=2)
    data = course_preferences(model, tokenizer, profile, seed, progress)
    rm = RewardModel(copy.deepcopy(model), seed=seed)
    train_reward_model(rm, tokenizer, data.train, data.validation, config, seed=seed, progress=progress, live=False,
                       keep_best=True)
    save_reward_model(rm, path, config.trainable, key=key)
    rm.requires_grad_(False)
    return rm.eval()
