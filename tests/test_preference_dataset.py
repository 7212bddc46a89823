"""The preference pairs the course ships (course_lib/data/preferences/): complete, split by topic, labelled by the
current rubric, and used by lesson 10 rather than sampled again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from course_lib.data.annotators import SimulatedAnnotator
from course_lib.data.preferences import load_pairs
from course_lib.data.prompts import TEST_TOPICS, TRAIN_TOPICS, VALIDATION_TOPICS, topic_of
from course_lib.llm.feedback import SPLITS, dataset_dir, dataset_key, group_runs, shipped_preferences

MANIFEST = json.loads((dataset_dir() / "manifest.json").read_text())


@pytest.mark.parametrize("split, topics", [("train", TRAIN_TOPICS), ("validation", VALIDATION_TOPICS),
                                           ("test", TEST_TOPICS)])
def test_each_split_holds_its_own_topics_and_the_manifests_count(split, topics, recwarn):
    pairs, report = load_pairs(dataset_dir() / f"{split}.jsonl")
    assert report.kept + sum(report.dropped.values()) == MANIFEST["counts"][split]["pairs"]
    assert report.kept > 0.95 * MANIFEST["counts"][split]["pairs"]
    assert {topic_of(p.prompt) for p in pairs} == set(topics)  # every topic of the split, no other
    assert all(hasattr(p.chosen, "finished") and hasattr(p.rejected, "ids") for p in pairs)  # token ids kept
    groups = group_runs(pairs)
    assert all(2 <= len(replies) <= 4 for _, replies in groups)  # ranked groups of K = 4, every pair kept


def test_the_labels_follow_the_current_rubric():
    assert MANIFEST["key"]["gold"] == SimulatedAnnotator.VERSION
    pairs, _ = load_pairs(dataset_dir() / "test.jsonl")
    annotator = SimulatedAnnotator(temperature=0)
    prompts = [p.prompt for p in pairs]
    gap = annotator.scores(prompts, [p.chosen for p in pairs]) - annotator.scores(prompts, [p.rejected for p in pairs])
    assert np.mean(gap > 0) > 0.75  # noisy labels (temperature 0.05) mostly agree with the noise-free score


def test_the_shipped_files_were_sampled_from_the_course_model_so_lesson_10_uses_them():
    from course_lib.llm.models import load_model

    model, _ = load_model()
    assert MANIFEST["key"] == dataset_key(model, MANIFEST["key"]["seed"])
    data = shipped_preferences(model)
    assert data is not None and data.source.startswith("shipped")
    assert [len(getattr(data, s)) for s in SPLITS] == [len(load_pairs(dataset_dir() / f"{s}.jsonl")[0])
                                                       for s in SPLITS]
