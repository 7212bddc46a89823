"""The preference-labelling widget: clicks append records that load as preference pairs."""

from __future__ import annotations

import pytest

from course_lib.data.labelling import PreferenceLabeller
from course_lib.data.preferences import PreferencePair, load_pairs

PROMPTS = ["Say hi.", "Describe <b>cheese</b>.", "Thank the robot."]
FIRST = ["Hi there, friend!", "Yellow.", "Thanks, robot!"]
SECOND = ["Go away.", "A <b>lovely</b>, tasty food.", "Whatever."]


def test_clicks_save_records_and_update_the_count(tmp_path):
    path = tmp_path / "labels" / "mine.jsonl"
    labeller = PreferenceLabeller(PROMPTS, FIRST, SECOND, path)
    assert "saved: 0" in labeller.widget.children[2].value
    labeller.buttons["A"].click()
    labeller.buttons["B"].click()
    assert "saved: 2" in labeller.widget.children[2].value and labeller.index == 2
    labeller.buttons["skip"].click()
    assert labeller.skipped == 1 and "All 3 pairs done" in labeller.widget.children[0].value
    assert all(b.disabled for b in labeller.buttons.values())
    labeller.buttons["A"].click()  # after the end: nothing more is saved
    pairs, report = load_pairs(path)
    assert pairs == [PreferencePair(PROMPTS[0], FIRST[0], SECOND[0]), PreferencePair(PROMPTS[1], SECOND[1], FIRST[1])]


def test_text_is_escaped_and_earlier_labels_are_counted(tmp_path):
    path = tmp_path / "mine.jsonl"
    PreferenceLabeller(PROMPTS, FIRST, SECOND, path).choose("A")
    again = PreferenceLabeller(PROMPTS[1:], FIRST[1:], SECOND[1:], path)
    assert again.saved == 1 and "saved: 1" in again.widget.children[2].value
    assert "&lt;b&gt;cheese&lt;/b&gt;" in again.widget.children[0].value and "<b>cheese</b>" not in \
        again.widget.children[0].value


def test_bad_arguments_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="prompts, first, second: expected equal lengths, got 2, 3, 3"):
        PreferenceLabeller(PROMPTS[:2], FIRST, SECOND, tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="prompts: expected at least one pair"):
        PreferenceLabeller([], [], [], tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="choice: expected 'A', 'B' or 'skip', got 'C'"):
        PreferenceLabeller(PROMPTS, FIRST, SECOND, tmp_path / "x.jsonl").choose("C")
