"""Preference data as plain records: ``{"prompt", "chosen", "rejected"}`` in JSONL.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

KEYS = ("prompt", "chosen", "rejected")
"""The record's keys, as TRL names its columns."""


@dataclass(frozen=True)
class PreferencePair:
    """One judgement: for ``prompt``, the response ``chosen`` is preferred to ``rejected``."""

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
        records: mappings with the keys ``prompt``, ``chosen``, ``rejected`` (strings); extra keys are ignored.
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
        if not isinstance(record, Mapping):
            raise ValueError(f"{source}, record {i}: expected a mapping with keys {list(KEYS)}, "
                             f"got {type(record).__name__}")
        missing = [k for k in KEYS if k not in record]
        if missing:
            raise ValueError(f"{source}, record {i}: expected the keys {list(KEYS)}, missing {missing} "
                             f"(got {sorted(record)})")
        for k in KEYS:
            if not isinstance(record[k], str):
                raise ValueError(f"{source}, record {i}: {k!r} expected a string, got {type(record[k]).__name__}")
        prompt, chosen, rejected = (record[k] for k in KEYS)
        if not chosen.strip() or not rejected.strip():
            dropped["empty"] += 1
        elif chosen == rejected:
            dropped["identical"] += 1
        elif max_prompt_length is not None and length(prompt) > max_prompt_length:
            dropped["prompt_too_long"] += 1
        else:
            pairs.append(PreferencePair(prompt, chosen, rejected))
    if n == 0:
        raise ValueError(f"{source}: expected at least one preference record, got none")
    report = ValidationReport(len(pairs), dropped)
    if not pairs:
        raise ValueError(f"{source}: no usable preference pair left: {report}")
    if dropped:
        warnings.warn(f"{source}: {report}", stacklevel=2)
    return pairs, report


def save_pairs(pairs: Iterable[PreferencePair | Mapping], path: str | Path) -> int:
    """Write pairs as JSONL, one ``{"prompt", "chosen", "rejected"}`` object per line (UTF-8). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for pair in pairs:
            record = asdict(pair) if isinstance(pair, PreferencePair) else {k: pair[k] for k in KEYS}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
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
