"""The statistics every LLM lesson reports: paired bootstrap intervals over topics and seeds, clustered errors.

Each test uses synthetic scores whose true effect is known, so an interval can be checked against it.
"""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.llm.evaluation import Interval, clustered_se, paired_bootstrap


def synthetic(rng, gain=0.1, topics=32, per_topic=4, seeds=3, topic_sd=0.3, seed_sd=0.05, noise=0.2):
    """Scores of a start model and of `seeds` trained models on the same replies, with a known mean gain."""
    groups = np.repeat(np.arange(topics), per_topic)
    topic = rng.normal(0, topic_sd, topics)
    start = np.repeat(topic, per_topic) + rng.normal(0, noise, topics * per_topic)
    shift = rng.normal(0, seed_sd, seeds)
    after = np.stack([np.repeat(topic + rng.normal(0, 0.1, topics), per_topic) + gain + shift[s]
                      + rng.normal(0, noise, topics * per_topic) for s in range(seeds)])
    return start, after, groups


@pytest.mark.parametrize("seeds, seed_sd", [(1, 0.0), (3, 0.05)])
def test_the_interval_covers_the_true_gain_about_95_percent_of_the_time(seeds, seed_sd):
    rng = np.random.default_rng(0)
    hits = []
    for k in range(200):
        start, after, groups = synthetic(rng, seeds=seeds, seed_sd=seed_sd)
        iv = paired_bootstrap(after, start, groups, n_boot=1000, seed=k)
        hits.append(iv.low < 0.1 < iv.high)
    assert 0.88 <= np.mean(hits) <= 0.995  # measured 0.92 and 0.93 at n_boot 2000 (percentile intervals run a bit short)


def test_the_estimate_is_the_difference_of_means_and_the_verdict_follows_the_interval():
    rng = np.random.default_rng(1)
    start, after, groups = synthetic(rng, gain=0.3)
    iv = paired_bootstrap(after, start, groups)
    assert iv.estimate == pytest.approx(after.mean() - start.mean())
    assert iv.low < iv.estimate < iv.high and iv.shown and iv.verdict() == "shown"
    assert iv.groups == 32 and iv.seeds == (3, 1)
    none = paired_bootstrap(start + np.where(groups % 2 == 0, 0.2, -0.2), start, groups)  # topics gain +-0.2, mean 0
    assert none.low < 0 < none.high and not none.shown and none.verdict() == "not shown"
    assert str(Interval(0.1234, -0.01, 0.2, 0.95, 4, (1, 1))) == "+0.123 [-0.010, +0.200]"


def test_pairing_cancels_what_both_sides_share():
    # Large topic effects shared by start and after: the paired interval is far narrower than the two
    # standard errors of independent means would suggest (the mistake lesson 11 used to make).
    rng = np.random.default_rng(2)
    start, after, groups = synthetic(rng, topic_sd=1.0, seeds=1, seed_sd=0.0, noise=0.05)
    iv = paired_bootstrap(after, start, groups)
    unpaired_se = np.hypot(clustered_se(start, groups), clustered_se(after[0], groups))
    assert (iv.high - iv.low) < 0.25 * (2 * 1.96 * unpaired_se)


def test_replies_of_one_topic_are_not_counted_as_independent():
    # Four identical copies of each reply carry the information of one: the interval must not shrink by 2.
    rng = np.random.default_rng(3)
    one = rng.normal(0, 1, 32)
    four = np.repeat(one, 4)
    groups = np.repeat(np.arange(32), 4)
    width_one = np.ptp([paired_bootstrap(one).low, paired_bootstrap(one).high])
    iv = paired_bootstrap(four, groups=groups)
    assert (iv.high - iv.low) == pytest.approx(width_one, rel=0.1)
    naive = paired_bootstrap(four)  # every copy its own group: too narrow by about half
    assert (naive.high - naive.low) < 0.6 * width_one
    assert clustered_se(four, groups) == pytest.approx(clustered_se(one, np.arange(32)))


def test_seeds_widen_the_interval_when_they_disagree():
    rng = np.random.default_rng(4)
    start, after, groups = synthetic(rng, seeds=3, seed_sd=0.0)
    calm = paired_bootstrap(after, start, groups)
    spread = after + np.array([[-0.3], [0.0], [0.3]])  # same mean, seeds far apart
    wide = paired_bootstrap(spread, start, groups)
    assert wide.estimate == pytest.approx(calm.estimate)
    assert (wide.high - wide.low) > 2 * (calm.high - calm.low)


def test_clustered_se_is_the_usual_se_with_one_value_per_group():
    x = np.random.default_rng(5).normal(size=50)
    assert clustered_se(x, range(50)) == pytest.approx(x.std(ddof=1) / np.sqrt(50))
    assert clustered_se(x, [0] * 50) == 0.0


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match=r"b: expected shape \(seeds, 4\) or \(4,\), got \(1, 3\)"):
        paired_bootstrap(np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="a: expected finite scores, got 1 non-finite"):
        paired_bootstrap(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"groups: expected one group label per value \(3\), got 2"):
        paired_bootstrap(np.zeros(3), groups=[0, 1])
    with pytest.raises(ValueError, match=r"level: expected a float in \(0, 1\), got 95"):
        paired_bootstrap(np.zeros(3), level=95)
