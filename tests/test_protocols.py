"""The seed-results file the LLM lessons read: written and read under a key, refused when the key differs."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.llm import protocols
from course_lib.llm.evaluation import HeldOutEvaluation


def evaluation(shift: float) -> HeldOutEvaluation:
    prompts = ["Write one sentence about a tram ride.", "What do you think about a tram ride?"]
    return HeldOutEvaluation(prompts, ["A calm ride.", "Lovely."], np.array([0.5, 0.6]) + shift, None,
                             np.array([0.0, 1.5]), np.array([4, 3]), np.array([True, False]))


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(protocols, "results_dir", lambda: tmp_path)
    return tmp_path


def test_results_round_trip_under_their_key(results_dir):
    key = {"experiment": "lesson11_rlhf", "profile": "cpu", "gold": "rubric-1", "config": {"steps": 20}}
    path = protocols.save_seed_results(key, {"seed 1": evaluation(0.1), "seed 2": evaluation(0.2)}, evaluation(0.0))
    assert path == results_dir / "lesson11_rlhf_cpu.json"
    runs, start, message = protocols.load_seed_results(key)
    assert sorted(runs) == ["seed 1", "seed 2"] and "seed 1, seed 2" in message
    np.testing.assert_allclose(runs["seed 2"].gold, [0.7, 0.8])
    np.testing.assert_array_equal(runs["seed 1"].ended, [True, False])
    assert runs["seed 1"].proxy is None and start.texts == ["A calm ride.", "Lovely."]
    assert runs["seed 1"].topics == ["a tram ride", "a tram ride"]  # the bootstrap's unit survives the round trip


def test_a_file_for_another_protocol_is_refused_and_names_the_field(results_dir):
    key = {"experiment": "lesson12_dpo", "profile": "cpu", "gold": "rubric-1", "config": {"beta": 0.1}}
    protocols.save_seed_results(key, {"seed 1": evaluation(0.1)}, evaluation(0.0))
    seeds, start, message = protocols.load_seed_results({**key, "config": {"beta": 0.3}})
    assert seeds == {} and start is None
    assert "written for another config" in message and "make seeds" in message
    seeds, _, message = protocols.load_seed_results({**key, "profile": "ci"})
    assert seeds == {} and "no results file lesson12_dpo_ci.json" in message


def test_the_committed_results_match_the_lessons_protocol_keys():
    # Every committed results file names an experiment the lessons read, for the cpu profile, with the current
    # gold judge: a rubric change without `make seeds` fails here instead of silently in a lesson.
    from course_lib.data.annotators import SimulatedAnnotator

    import json

    files = sorted(protocols.results_dir().glob("*.json"))
    for path in files:
        key = json.loads(path.read_text())["key"]
        assert key["experiment"] in ("lesson09_sft_rl", "lesson11_rlhf", "lesson12_dpo", "lesson13_rlaif",
                                     "lesson14_grpo", "lesson15_bon", "lesson15_hard"), path.name
        assert key["profile"] == "cpu", path.name
        assert key["gold"] == SimulatedAnnotator.VERSION, path.name


def test_replies_read_back_keep_whether_they_finished(results_dir):
    # the rubric reads a reply's EOS flag; a reply read back from the file must not fall back to its punctuation
    from course_lib.data.annotators import SimulatedAnnotator

    key = {"experiment": "lesson11_rlhf", "profile": "cpu"}
    protocols.save_seed_results(key, {"seed 1": evaluation(0.1)}, evaluation(0.0))
    runs, _, _ = protocols.load_seed_results(key)
    ev = runs["seed 1"]
    a = SimulatedAnnotator(temperature=0)
    assert [a.attributes(p, t)["finished"] for p, t in zip(ev.prompts, ev.texts)] == [1.0, 0.0]  # "Lovely." was cut


@pytest.mark.parametrize("script", ["run_seeds.py", "make_preference_data.py"])
def test_the_seed_and_data_scripts_have_help_and_refuse_a_bad_seed_in_one_line(script):
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / script
    shown = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--seed" in shown.stdout
    bad = subprocess.run([sys.executable, str(path), "--seeds" if script == "run_seeds.py" else "--seed", "-1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "expected" in bad.stderr and "Traceback" not in bad.stderr


def test_extra_is_stored_beside_the_runs_and_only_read_under_its_key(results_dir):
    key = {"experiment": "lesson15_hard", "profile": "cpu", "gold": "rubric-1", "config": {"steps": 28}}
    histories = {"seed 1": {"steps": [0, 4], "gold": [0.5, 0.55]}}
    protocols.save_seed_results(key, {"seed 1": evaluation(0.1)}, evaluation(0.0), extra={"histories": histories})
    assert protocols.load_seed_extra(key) == {"histories": histories}
    assert protocols.load_seed_extra({**key, "config": {"steps": 12}}) == {}
    assert protocols.load_seed_extra({**key, "profile": "gpu"}) == {}


# ---- lesson 14: GRPO's seeds ----------------------------------------------------------------------------------

def test_grpo_scores_read_accuracy_and_format_back_from_the_stored_texts(results_dir):
    # the results file stores texts and the reward; accuracy and format rate must come back from the texts alone
    from course_lib.data.arithmetic import HELD_OUT_QUESTIONS, arithmetic_reward

    q = HELD_OUT_QUESTIONS[0]
    prompts = [f"<user>{q.text}</user>"] * 4
    texts = [f"The answer is {q.answer}.", f"The answer is {q.answer + 1}.", f"{q.a} {q.op} {q.b} = {q.answer}",
             "I am not sure."]
    ev = HeldOutEvaluation(prompts, texts, np.asarray(arithmetic_reward(prompts, texts)), None, np.zeros(4),
                           np.array([6, 6, 7, 5]), np.array([True, True, False, True]))
    key = {"experiment": "lesson14_grpo", "profile": "cpu", "gold": "rubric-1"}
    protocols.save_seed_results(key, {"seed 1": ev}, ev)
    back = protocols.grpo_scores(protocols.load_seed_results(key)[0]["seed 1"])
    np.testing.assert_array_equal(back["reward"], [1.5, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(back["accuracy"], [1, 0, 0, 0])  # a right number outside the form is not right
    np.testing.assert_array_equal(back["format"], [1, 1, 0, 0])


def test_grpo_evaluation_is_on_the_held_out_questions_only(tiny, monkeypatch):
    from course_lib.data.arithmetic import HELD_OUT_QUESTIONS, TRAIN_QUESTIONS

    monkeypatch.setenv("COURSE_PROFILE", "ci")
    model, tok = tiny
    ev = protocols.grpo_evaluate(model, tok, model)
    settings = protocols.grpo_eval_settings()
    assert len(ev.texts) == len(settings["questions"]) * settings["per_prompt"]
    assert settings["questions"] == [q.text for q in HELD_OUT_QUESTIONS[:len(settings["questions"])]]
    assert all(any(q.text in p for q in HELD_OUT_QUESTIONS) for p in ev.prompts)
    assert not any(q.text in p for q in TRAIN_QUESTIONS for p in ev.prompts)
    np.testing.assert_allclose(ev.kl, 0, atol=1e-4)  # KL of the model to itself


def test_a_grpo_seed_reproduces_itself_so_the_file_can_stand_beside_the_live_run(tiny, monkeypatch):
    # the lesson compares its live seed 0 with the file's: that comparison only means something when one seed
    # gives one result, and when the key changes with what the run depends on
    import course_lib.data.arithmetic as arithmetic
    from conftest import lowercase_share
    from course_lib.llm.feedback import model_fingerprint

    monkeypatch.setenv("COURSE_PROFILE", "ci")
    monkeypatch.setattr(arithmetic, "arithmetic_reward", lowercase_share)  # the tiny model never writes a sum
    model, tok = tiny
    first = protocols.grpo_run(model, tok, seed=0)
    second = protocols.grpo_run(model, tok, seed=0)
    other = protocols.grpo_run(model, tok, seed=1)
    assert first[1].texts == second[1].texts and np.array_equal(first[1].gold, second[1].gold)
    assert first[2] is not model and model_fingerprint(first[2]) != model_fingerprint(model)
    assert model_fingerprint(first[2]) != model_fingerprint(other[2])
    history = protocols.grpo_history(first[0])
    assert history["steps"] == list(range(1, protocols.grpo_config().steps + 1))
    assert set(protocols.GRPO_CURVES) <= set(history) and all(len(history[k]) == len(history["steps"])
                                                              for k in protocols.GRPO_CURVES)
    key = protocols.grpo_key(model)
    assert key["experiment"] == "lesson14_grpo" and key["config"]["steps"] == protocols.grpo_config().steps
    monkeypatch.setattr(protocols, "GRPO_EVAL_CHUNK", 7)  # another random stream: another key
    assert protocols.grpo_key(model) != key



def test_merge_adds_seeds_run_by_separate_processes(results_dir):
    key = {"experiment": "lesson15_hard", "profile": "cpu", "gold": "rubric-1", "config": {"steps": 28}}
    protocols.save_seed_results(key, {"seed 1": evaluation(0.1)}, evaluation(0.0),
                                extra={"histories": {"seed 1": {"gold": [0.5]}}}, merge=True)
    protocols.save_seed_results(key, {"seed 2": evaluation(0.2)}, evaluation(0.0),
                                extra={"histories": {"seed 2": {"gold": [0.6]}}}, merge=True)
    runs, _, _ = protocols.load_seed_results(key)
    assert sorted(runs) == ["seed 1", "seed 2"]
    assert protocols.load_seed_extra(key) == {"histories": {"seed 1": {"gold": [0.5]}, "seed 2": {"gold": [0.6]}}}
    protocols.save_seed_results({**key, "config": {"steps": 12}}, {"seed 3": evaluation(0.3)}, evaluation(0.0),
                                merge=True)  # another protocol: the old seeds must not leak in
    runs, _, _ = protocols.load_seed_results({**key, "config": {"steps": 12}})
    assert sorted(runs) == ["seed 3"]


def test_a_file_of_samples_only_needs_no_start_evaluation(results_dir):
    key = {"experiment": "lesson15_bon", "profile": "cpu", "gold": "rubric-1"}
    protocols.save_seed_results(key, {}, None, extra={"proxy": [[0.1, 0.2]]})
    runs, start, _ = protocols.load_seed_results(key)
    assert runs == {} and start is None and protocols.load_seed_extra(key) == {"proxy": [[0.1, 0.2]]}
