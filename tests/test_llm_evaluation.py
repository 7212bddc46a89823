import numpy as np
import pytest
import torch

from course_lib.llm.evaluation import evaluate_policy, evaluation_table, spearman
from course_lib.llm.models import tiny_model
from course_lib.llm.rollout import response_outputs, sample_responses


def length_score(prompts, responses):
    return [float(len(r)) for r in responses]


def test_the_reference_itself_is_at_zero_kl_and_every_field_has_one_entry_per_response():
    lm, tok = tiny_model(seed=0)
    ev = evaluate_policy(lm, tok, ["Q one:", "Q two:", "Q three:"], gold_fn=length_score, reference=lm,
                         per_prompt=2, max_new_tokens=5, proxy_fn=lambda p, r: [1.0] * len(r), chunk=4)
    assert len(ev.texts) == len(ev.prompts) == 6 and ev.prompts[:2] == ["Q one:", "Q one:"]
    for field in (ev.gold, ev.proxy, ev.kl, ev.lengths, ev.ended):
        assert field.shape == (6,)
    np.testing.assert_allclose(ev.kl, 0.0, atol=1e-5)
    np.testing.assert_array_equal(ev.gold, [len(t) for t in ev.texts])
    assert ((ev.lengths >= 1) & (ev.lengths <= 5)).all()
    s = ev.summary()
    assert s["gold"] == pytest.approx(np.mean(ev.gold)) and s["proxy"] == 1.0
    resid = (ev.gold - ev.gold.mean()).reshape(3, 2).sum(axis=1)  # per prompt: each is its own topic, 2 replies
    assert s["gold_se"] == pytest.approx(np.sqrt(3 / 2 * np.sum(resid ** 2)) / 6)  # the SE clustered by topic


def test_the_same_seed_gives_the_same_samples_and_kl_matches_a_direct_computation():
    lm, tok = tiny_model(seed=0)
    other, _ = tiny_model(seed=1)
    a = evaluate_policy(lm, tok, ["Q one:", "Q two:"], gold_fn=length_score, reference=other, per_prompt=2,
                        max_new_tokens=4, seed=7, chunk=4)
    b = evaluate_policy(lm, tok, ["Q one:", "Q two:"], gold_fn=length_score, reference=other, per_prompt=2,
                        max_new_tokens=4, seed=7, chunk=4)
    assert a.texts == b.texts and np.array_equal(a.kl, b.kl) and a.proxy is None
    torch.manual_seed(7)
    samples = sample_responses(lm, tok, ["Q one:", "Q one:", "Q two:", "Q two:"], 4)
    mask = samples.response_mask
    diff = response_outputs(lm, samples, with_values=False).logp - response_outputs(other, samples,
                                                                                    with_values=False).logp
    np.testing.assert_allclose(a.kl, (diff * mask).sum(dim=1).detach().numpy(), atol=1e-5)
    assert a.summary()["kl"] != 0.0


def test_bad_arguments_name_the_argument():
    lm, tok = tiny_model(seed=0)
    with pytest.raises(ValueError, match="per_prompt: expected an int >= 1, got 0"):
        evaluate_policy(lm, tok, ["Q:"], length_score, lm, per_prompt=0)
    with pytest.raises(ValueError, match="gold_fn: expected one score per response, got 1 for 2"):
        evaluate_policy(lm, tok, ["Q:"], lambda p, r: [0.0], lm, per_prompt=2, max_new_tokens=2)
    with pytest.raises(TypeError, match="results: expected a dict of name -> HeldOutEvaluation, got int for 'a'"):
        evaluation_table({"a": 1})


def test_the_table_has_one_row_per_model_with_its_numbers():
    lm, tok = tiny_model(seed=0)
    ev = evaluate_policy(lm, tok, ["Q one:"], length_score, lm, per_prompt=2, max_new_tokens=3,
                         proxy_fn=lambda p, r: [0.5] * len(r))
    lines = evaluation_table({"start": ev, "after": ev}).splitlines()
    assert len(lines) == 3 and lines[1].startswith("start") and lines[2].startswith("after")
    assert f"{ev.summary()['gold']:+.3f}" in lines[1] and "+0.500" in lines[1]


def test_spearman_is_pearson_on_mean_ranks_and_nan_without_order():
    a = np.array([0.3, -1.0, 0.3, 2.0, 0.0, 0.3])
    b = np.array([1.0, 0.5, -2.0, 4.0, 0.5, 3.0])

    def mean_rank(x):  # rank = how many are smaller, plus half of the other equal ones
        return np.array([(x < v).sum() + ((x == v).sum() - 1) / 2 for v in x])

    assert spearman(a, b) == pytest.approx(np.corrcoef(mean_rank(a), mean_rank(b))[0, 1])
    assert spearman(a, a ** 3) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.zeros(6)))
    with pytest.raises(ValueError, match=r"a, b: expected two 1-d arrays of one length, got shapes \(6,\) and \(5,\)"):
        spearman(a, b[:5])
