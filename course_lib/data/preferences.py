"""Preference data as plain records: ``{"prompt", "chosen", "rejected"}`` in JSONL, and sampled replies.

The column names are the ones Hugging Face TRL's ``RewardTrainer`` and ``DPOTrainer``
read for the "explicit prompt" preference format, so a file written here loads
with ``datasets.load_dataset("json", data_files=path)`` and trains there unchanged
(lesson 16). Every record is one human (or simulated, or AI) judgement: for this
prompt, ``chosen`` was preferred to ``rejected``.

:func:`validate_pairs` is the gate every loader goes through: a broken file gives
an error naming the record and the key; pairs that would teach nothing (identical
responses, empty strings) or do not fit the model (over-long prompts) are dropped
and counted, with one warning that says how many and why.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

KEYS = ("prompt", "chosen", "rejected")
"""The record's keys, as TRL names its columns."""


class Reply(str):
    """A sampled reply: its text (the ``str`` value, decoded without special tokens) plus its token ids.

    Attributes:
        ids: the sampled token ids, up to and including the first EOS when the reply finished.
        finished: True when the reply ended with EOS, False when it was cut at the token limit.

    Anything that treats it as text (an annotator, a plot, ``print``) sees the text; anything that
    scores the episode (a reward model, DPO, SFT) reads ``ids``
    (:func:`course_lib.llm.tokens.reply_ids`). Two replies with the same text but different ids (a
    finished one and a cut one) compare equal as strings: key them by ``(text, ids)``.
    """

    ids: tuple[int, ...]
    finished: bool

    def __new__(cls, text: str, ids, finished: bool):
        if not isinstance(text, str):
            raise ValueError(f"text: expected a str, got {type(text).__name__}")
        ids = tuple(ids)
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise ValueError(f"ids: expected token ids (ints >= 0), got {list(ids)[:8]!r}")
        obj = super().__new__(cls, text)
        obj.ids, obj.finished = ids, bool(finished)
        return obj

    def __getnewargs__(self):  # copy, deepcopy and pickle keep the ids
        return str(self), self.ids, self.finished

    def __repr__(self) -> str:
        return f"Reply({str(self)!r}, {len(self.ids)} tokens, {'finished' if self.finished else 'cut'})"


def reply_key(reply: str) -> tuple:
    """What tells two replies apart: the text, and the ids of a :class:`Reply` (a cut and a finished reply
    with the same text are different episodes)."""
    return (str(reply), reply.ids) if isinstance(reply, Reply) else (str(reply), None)


def pair_record(pair: "PreferencePair | Mapping") -> dict:
    """A pair as a JSON-ready record: TRL's three columns, plus each :class:`Reply`'s ids and finished flag."""
    if not isinstance(pair, PreferencePair):
        pair = PreferencePair(*(pair[k] for k in KEYS))
    record = {"prompt": str(pair.prompt), "chosen": str(pair.chosen), "rejected": str(pair.rejected)}
    for key in ("chosen", "rejected"):
        reply = getattr(pair, key)
        if isinstance(reply, Reply):
            record[f"{key}_ids"] = list(reply.ids)
            record[f"{key}_finished"] = reply.finished
    return record


def _reply_from(record: Mapping, key: str, where: str) -> str:
    """The record's ``key`` as a :class:`Reply` when it has ``key_ids``, else as plain text."""
    if f"{key}_ids" not in record:
        return record[key]
    ids, finished = record[f"{key}_ids"], record.get(f"{key}_finished")
    if not isinstance(ids, list) or not isinstance(finished, bool):
        raise ValueError(f"{where}: {key + '_ids'!r} expected a list of token ids with a bool {key + '_finished'!r}, "
                         f"got {type(ids).__name__} and {type(finished).__name__}")
    try:
        return Reply(record[key], ids, finished)
    except ValueError as err:
        raise ValueError(f"{where}: {key + '_ids'!r}: {err}") from None


@dataclass(frozen=True)
class PreferencePair:
    """One judgement: for ``prompt``, the response ``chosen`` is preferred to ``rejected``.

    ``chosen`` and ``rejected`` are text, or :class:`Reply` s when they were sampled (their ids kept).
    """

    prompt: str
    chosen: str
    rejected: str


@dataclass
class ValidationReport:
    """What :func:`validate_pairs` kept and dropped."""

    kept: int
    dropped: Counter
    """Reason -> number of pairs dropped for it: ``identical``, ``empty``, ``prompt_too_long``."""

    def __str__(self) -> str:
        total = self.kept + sum(self.dropped.values())
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items())) or "none dropped"
        return f"{self.kept} of {total} preference pairs kept ({why})"


def validate_pairs(records: Iterable[Mapping], max_prompt_length: int | None = None,
                   length: Callable[[str], int] = len, source: str = "records"
                   ) -> tuple[list[PreferencePair], ValidationReport]:
    """Check preference records and turn them into :class:`PreferencePair` s.

    Args:
        records: mappings with the keys ``prompt``, ``chosen``, ``rejected`` (strings), and optionally the
            replies' token ids (``chosen_ids``, ``chosen_finished``, ... as :func:`pair_record` writes them);
            other keys are ignored.
        max_prompt_length: drop pairs whose prompt is longer (in ``length`` units); None keeps all.
        length: measures a prompt, default characters; pass e.g.
            ``lambda s: len(tokenizer(s).input_ids)`` to count tokens.
        source: names the data in messages (e.g. the file path).

    Returns:
        ``(pairs, report)``. Dropped (counted, one warning for all): chosen identical to rejected
        (``identical``: no preference to learn), an empty chosen or rejected (``empty``), a prompt
        over ``max_prompt_length`` (``prompt_too_long``).

    Raises:
        ValueError: no records at all, a record that is not a mapping, a missing key, a value that is
            not a string (naming the record's position and the key), or nothing left after dropping.
    """
    if max_prompt_length is not None and (isinstance(max_prompt_length, bool) or not isinstance(max_prompt_length, int)
                                          or max_prompt_length < 1):
        raise ValueError(f"max_prompt_length: expected an int >= 1 or None, got {max_prompt_length!r}")
    pairs: list[PreferencePair] = []
    dropped: Counter = Counter()
    n = 0
    for i, record in enumerate(records):
        n += 1
        pair = pair_from_record(record, f"{source}, record {i}")
        prompt, chosen, rejected = pair.prompt, pair.chosen, pair.rejected
        if not chosen.strip() or not rejected.strip():
            dropped["empty"] += 1
        elif reply_key(chosen) == reply_key(rejected):
            dropped["identical"] += 1
        elif max_prompt_length is not None and length(prompt) > max_prompt_length:
            dropped["prompt_too_long"] += 1
        else:
            pairs.append(pair)
    if n == 0:
        raise ValueError(f"{source}: expected at least one preference record, got none")
    report = ValidationReport(len(pairs), dropped)
    if not pairs:
        raise ValueError(f"{source}: no usable preference pair left: {report}")
    if dropped:
        warnings.warn(f"{source}: {report}", stacklevel=2)
    return pairs, report


def pair_from_record(record, where: str = "record") -> PreferencePair:
    """One record (:func:`pair_record`'s form) -> a :class:`PreferencePair`, its replies as :class:`Reply` s
    where the record has their ids.

    Raises:
        ValueError: not a mapping, a missing key, a value of the wrong type (naming ``where`` and the key).
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected a mapping with keys {list(KEYS)}, got {type(record).__name__}")
    missing = [k for k in KEYS if k not in record]
    if missing:
        raise ValueError(f"{where}: expected the keys {list(KEYS)}, missing {missing} (got {sorted(record)})")
    for k in KEYS:
        if not isinstance(record[k], str):
            raise ValueError(f"{where}: {k!r} expected a string, got {type(record[k]).__name__}")
    chosen, rejected = (_reply_from(record, key, where) for key in ("chosen", "rejected"))
    return PreferencePair(record["prompt"], chosen, rejected)


def save_pairs(pairs: Iterable[PreferencePair | Mapping], path: str | Path) -> int:
    """Write pairs as JSONL, one :func:`pair_record` per line (UTF-8). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(pair_record(pair), ensure_ascii=False) + "\n")
            n += 1
    return n


def load_pairs(path: str | Path, max_prompt_length: int | None = None, length: Callable[[str], int] = len
               ) -> tuple[list[PreferencePair], ValidationReport]:
    """Read a JSONL file of preference records and validate it (:func:`validate_pairs`).

    Raises:
        FileNotFoundError: no such file. ValueError: a line that is not JSON (naming the line),
        or what :func:`validate_pairs` rejects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected a JSONL file of preference pairs, {str(path)!r} does not exist")
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {lineno}: expected one JSON object per line ({err.msg})") from None
    return validate_pairs(records, max_prompt_length, length, source=str(path))
