"""Preference records in JSONL: TRL's column names, a round trip, clear errors and counted drops."""

from __future__ import annotations

import json
import warnings

import pytest

from course_lib.data.preferences import KEYS, PreferencePair, load_pairs, save_pairs, validate_pairs

GOOD = [{"prompt": "Tell me about the robot.", "chosen": "It found the cheese!", "rejected": "It got lost."},
        {"prompt": "How was the day?", "chosen": "Lovely, thank you.", "rejected": "Awful."}]


def test_columns_are_trls_explicit_prompt_format():
    assert KEYS == ("prompt", "chosen", "rejected")


def test_round_trip_through_jsonl(tmp_path):
    path = tmp_path / "prefs" / "pairs.jsonl"
    assert save_pairs([PreferencePair(**GOOD[0]), GOOD[1]], path) == 2
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == GOOD
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing dropped: no warning
        pairs, report = load_pairs(path)
    assert pairs == [PreferencePair(**r) for r in GOOD] and report.kept == 2 and not report.dropped


def test_unicode_survives(tmp_path):
    pair = PreferencePair("Sag etwas Nettes.", "Schön, dich zu sehen! 🧀", "Nein.")
    save_pairs([pair], tmp_path / "u.jsonl")
    assert load_pairs(tmp_path / "u.jsonl")[0] == [pair]


def test_useless_and_over_long_pairs_are_dropped_and_counted_in_one_warning():
    records = GOOD + [
        {"prompt": "p", "chosen": "same", "rejected": "same"},
        {"prompt": "p", "chosen": "   ", "rejected": "x"},
        {"prompt": "a very long prompt " * 10, "chosen": "a", "rejected": "b"},
    ]
    with pytest.warns(UserWarning) as caught:
        pairs, report = validate_pairs(records, max_prompt_length=50)
    assert len(caught) == 1
    assert str(caught[0].message) == ("records: 2 of 5 preference pairs kept "
                                      "(1 empty, 1 identical, 1 prompt_too_long)")
    assert len(pairs) == 2 and report.dropped == {"empty": 1, "identical": 1, "prompt_too_long": 1}


def test_prompt_length_can_count_tokens():
    with pytest.warns(UserWarning, match=r"1 of 2 preference pairs kept \(1 prompt_too_long\)"):
        pairs, report = validate_pairs(GOOD, max_prompt_length=4, length=lambda s: len(s.split()))
    assert [p.prompt for p in pairs] == ["How was the day?"]


@pytest.mark.parametrize("records, message", [
    ([], "records: expected at least one preference record, got none"),
    ([{"prompt": "p", "chosen": "c"}], "records, record 0: expected the keys ['prompt', 'chosen', 'rejected'], "
                                       "missing ['rejected']"),
    ([GOOD[0], {"prompt": "p", "chosen": 1, "rejected": "r"}], "records, record 1: 'chosen' expected a string, got int"),
    (["prompt,chosen,rejected"], "records, record 0: expected a mapping"),
    ([{"prompt": "p", "chosen": "x", "rejected": "x"}], "records: no usable preference pair left: 0 of 1"),
])
def test_broken_data_gives_a_clear_error(records, message):
    with pytest.raises(ValueError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        validate_pairs(records)
    assert message in str(err.value)


def test_file_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pairs(tmp_path / "missing.jsonl")
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD[0]) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl, line 3: expected one JSON object per line"):
        load_pairs(path)
    with pytest.raises(ValueError, match="max_prompt_length: expected an int >= 1 or None, got 0"):
        validate_pairs(GOOD, max_prompt_length=0)
