"""Lesson 5's checks pass the references and fail plausible wrong versions with a useful message."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.checks import CheckFailed
from course_lib.checks.lesson05 import (
    check_dyna_planning,
    check_update_model,
    dyna_planning_cases,
    update_model,
    update_model_cases,
)
from course_lib.tabular.td import dyna_planning

# ---- update_model ----------------------------------------------------------------------


def test_update_model_reference_passes(capsys):
    result = check_update_model(update_model)
    assert result.status == "pass" and result.passed == result.total == len(update_model_cases())
    assert f"[x] update_model: all {result.total} cases passed" in capsys.readouterr().out


def test_update_model_reference_matches_dyna_q_line():
    model = {}
    update_model(model, 3, 1, -1.0, 4, False)
    update_model(model, 3, 1, 10.0, 5, True)
    assert model == {(3, 1): (10.0, 5, True)}


def keeps_first_outcome(model, s, a, r, s2, terminated):
    model.setdefault((s, a), (r, s2, terminated))


def wrong_order(model, s, a, r, s2, terminated):
    model[(s, a)] = (s2, r, terminated)


def keyed_by_state(model, s, a, r, s2, terminated):
    model[s] = (r, s2, terminated)


def forgets_terminated(model, s, a, r, s2, terminated):
    model[(s, a)] = (r, s2)


def returns_new_dict(model, s, a, r, s2, terminated):
    return {**model, (s, a): (r, s2, terminated)}


def starts_afresh(model, s, a, r, s2, terminated):
    model.clear()
    model[(s, a)] = (r, s2, terminated)


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (keeps_first_outcome, r"case 3 of 5 \(the same \(s, a\) again with a different outcome: keep only the latest"
                              r".*result\[0\] \(the outcome stored for \(s, a\)\)\[0\]: expected -\d+, got -\d+"),
        (wrong_order, r"case 1 of 5 .*result\[0\] \(the outcome stored for \(s, a\)\)\[0\]: expected -1, got 13"),
        (keyed_by_state, r"case 1 of 5 .*the outcome stored for \(s, a\)\): expected a tuple of 3 items, got NoneType"),
        (forgets_terminated, r"case 1 of 5 .*expected 3 items, got 2"),
        (returns_new_dict, r"case 1 of 5 .* raised TypeError: update_model should change `model` in place"),
        (starts_afresh, r"case 2 of 5 \(a new pair joins.*result\[1\] \(the model's keys\): expected 6 items, got 1"),
    ],
)
def test_update_model_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_update_model(wrong)
    assert "Hint:" in str(err.value)


def test_update_model_stub_propagates(capsys):
    def stub(model, s, a, r, s2, terminated):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_update_model(stub)
    assert "not implemented yet" in capsys.readouterr().out


# ---- dyna_planning ---------------------------------------------------------------------


def test_dyna_planning_reference_passes(capsys):
    result = check_dyna_planning(dyna_planning)
    assert result.status == "pass" and result.passed == result.total == len(dyna_planning_cases())
    assert f"[x] dyna_planning: all {result.total} cases passed" in capsys.readouterr().out


def test_dyna_planning_cases_leave_their_inputs_alone():
    cases = dyna_planning_cases()
    before = [(c.args[0].copy(), dict(c.args[1])) for c in cases]
    check_dyna_planning(dyna_planning)
    for case, (q, model) in zip(cases, before):
        np.testing.assert_array_equal(case.args[0], q)
        assert case.args[1] == model


def _target(Q, r, s2, gamma, terminated):
    return r if terminated else r + gamma * Q[s2].max()


def choice_sampler(Q, model, n, alpha, gamma, rng):
    """A correct variant: rng.choice(len(keys)) draws the same index as rng.integers(len(keys))."""
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.choice(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] = Q[s, a] + alpha * (_target(Q, r, s2, gamma, terminated) - Q[s, a])
    return Q  # returning the same array it updated is harmless


def bootstraps_on_terminal(Q, model, n, alpha, gamma, rng):
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, _ = model[(s, a)]
        Q[s, a] += alpha * (r + gamma * Q[s2].max() - Q[s, a])


def samples_all_pairs(Q, model, n, alpha, gamma, rng):
    for _ in range(n):
        s, a = int(rng.integers(Q.shape[0])), int(rng.integers(Q.shape[1]))
        if (s, a) not in model:
            continue
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (_target(Q, r, s2, gamma, terminated) - Q[s, a])


def samples_all_pairs_crashes(Q, model, n, alpha, gamma, rng):
    for _ in range(n):
        s, a = int(rng.integers(Q.shape[0])), int(rng.integers(Q.shape[1]))
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (_target(Q, r, s2, gamma, terminated) - Q[s, a])


def wrong_sign(Q, model, n, alpha, gamma, rng):
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] -= alpha * (_target(Q, r, s2, gamma, terminated) - Q[s, a])


def forgets_alpha(Q, model, n, alpha, gamma, rng):
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] = _target(Q, r, s2, gamma, terminated)


def forgets_gamma(Q, model, n, alpha, gamma, rng):
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (_target(Q, r, s2, 1.0, terminated) - Q[s, a])


def batched_targets(Q, model, n, alpha, gamma, rng):
    """All targets from the Q before planning: later samples do not see earlier updates."""
    keys = list(model)
    old = Q.copy()
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (_target(old, r, s2, gamma, terminated) - Q[s, a])


def returns_new_table(Q, model, n, alpha, gamma, rng):
    Q = Q.copy()
    dyna_planning(Q, model, n, alpha, gamma, rng)
    return Q


def one_step_too_many(Q, model, n, alpha, gamma, rng):
    dyna_planning(Q, model, n + 1, alpha, gamma, rng)


def test_an_equivalent_sampler_passes():
    assert check_dyna_planning(choice_sampler, ).status == "pass"


@pytest.mark.parametrize(
    "wrong, expected_message",
    [
        (bootstraps_on_terminal, r"case 3 of 7 \(every remembered transition ends the episode: the target is r alone"
                                 r".*first mismatch at index \[\d+, \d\]"),
        (samples_all_pairs, r"case 1 of 7 .*result: first mismatch at index \[\d, \d\]"),
        (samples_all_pairs_crashes, r"case 1 of 7 .* raised KeyError"),
        (wrong_sign, r"case 1 of 7 \(one planning step.*first mismatch at index \[\d, \d\]: expected -?\d.*, got -?\d"),
        (forgets_alpha, r"case 1 of 7 \(one planning step.*first mismatch"),
        (forgets_gamma, r"case 1 of 7 .*first mismatch"),
        (batched_targets, r"case 5 of 7 \(a corridor 0 -> 1 -> 2 -> cheese.*first mismatch"),
        (returns_new_table, r"case 1 of 7 .* raised TypeError: dyna_planning should update Q in place"),
        (one_step_too_many, r"case 1 of 7 .*first mismatch"),
    ],
)
def test_dyna_planning_wrong_versions_fail(wrong, expected_message):
    with pytest.raises(CheckFailed, match=expected_message) as err:
        check_dyna_planning(wrong)
    assert "Hint:" in str(err.value)


def test_dyna_planning_wrong_sign_names_the_update_in_its_hint():
    with pytest.raises(CheckFailed, match=r"Hint: target = r if terminated else r \+ gamma \* max\(Q\[s2\]\)"):
        check_dyna_planning(wrong_sign)


def test_dyna_planning_stub_propagates(capsys):
    def stub(Q, model, n, alpha, gamma, rng):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_dyna_planning(stub)
    assert "not implemented yet" in capsys.readouterr().out
