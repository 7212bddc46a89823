"""MetricLogger: history, validation, progress bar, table, plots, live redraw; METRICS vs docs/metrics.md."""

from __future__ import annotations

import re
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from conftest import ROOT  # noqa: E402
from course_lib.utils.metrics import METRICS, NAME_PATTERN, MetricLogger  # noqa: E402


@pytest.fixture(autouse=True)
def no_figures_left():
    plt.close("all")
    yield
    plt.close("all")


def quiet(**kwargs) -> MetricLogger:
    return MetricLogger(progress=False, live=False, **kwargs)


def test_history_and_as_arrays():
    logger = quiet()
    for step in (0, 10, 20):
        logger.log(step, {"losses/value_loss": 1.0 / (step + 1), "charts/episodic_return": step * 2})
    logger.log(20, **{"losses/approx_kl": np.float32(0.5)})  # a second call at the same step

    assert logger.names() == ["charts/episodic_return", "losses/approx_kl", "losses/value_loss"]
    assert logger.history["charts/episodic_return"] == [(0, 0.0), (10, 20.0), (20, 40.0)]
    steps, values = logger.as_arrays("losses/value_loss")
    assert steps.dtype == np.int64 and values.dtype == np.float64
    np.testing.assert_array_equal(steps, [0, 10, 20])
    np.testing.assert_allclose(values, [1.0, 1 / 11, 1 / 21])
    assert logger.last("losses/approx_kl") == 0.5 and type(logger.last("losses/approx_kl")) is float
    with pytest.raises(KeyError, match=r"name: expected one of the logged metrics .*got 'losses/entropy'"):
        logger.as_arrays("losses/entropy")


def test_accepts_python_numpy_and_0d_torch_values():
    torch = pytest.importorskip("torch")
    logger = quiet()
    logger.log(1, {"a/int": 3, "a/np": np.float64(0.25), "a/np0d": np.array(1.5), "a/torch": torch.tensor(2.0)})
    assert [logger.last(n) for n in ("a/int", "a/np", "a/np0d", "a/torch")] == [3.0, 0.25, 1.5, 2.0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -np.inf, np.float32("nan")])
def test_nan_and_inf_name_the_metric_and_step(bad):
    logger = quiet()
    logger.log(5, {"losses/value_loss": 1.0})
    message = r"losses/policy_loss at step 7: expected a finite real number, got (nan|-?inf)"
    with pytest.raises(ValueError, match=message):
        logger.log(7, {"losses/value_loss": 0.5, "losses/policy_loss": bad})
    assert logger.history == {"losses/value_loss": [(5, 1.0)]}  # nothing of the bad call was recorded


def test_nan_in_a_torch_tensor_is_caught():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="dpo/loss at step 3: expected a finite real number, got nan"):
        quiet().log(3, {"dpo/loss": torch.tensor(float("nan"))})


@pytest.mark.parametrize("bad, message", [
    ("0.5", "expected a real number, got '0.5'"),
    (True, "expected a real number, got True"),
    (1 + 2j, "expected a real number"),
    (None, "expected a real number, got None"),
    ([1.0], "expected a real number"),
    (np.array([1.0, 2.0]), r"expected a single real number .*got shape \(2,\)"),
])
def test_rejects_values_that_are_not_one_real_number(bad, message):
    with pytest.raises(ValueError, match=r"charts/x at step 0: " + message):
        quiet().log(0, {"charts/x": bad})


@pytest.mark.parametrize("name", ["value_loss", "Losses/value_loss", "losses/value-loss", "losses/", "a/b/c",
                                  "/loss", "losses/value loss"])
def test_bad_names_are_rejected(name):
    message = re.escape("metric name: expected 'namespace/name'") + ".*got " + re.escape(repr(name))
    with pytest.raises(ValueError, match=message):
        quiet().log(0, {name: 1.0})


def test_bad_arguments_name_argument_expected_and_got():
    logger = quiet()
    logger.log(10, {"charts/x": 1.0})
    with pytest.raises(ValueError, match=r"step: expected an int >= 10 \(steps never go back\), got 9"):
        logger.log(9, {"charts/x": 1.0})
    with pytest.raises(ValueError, match=r"step: expected an int >= 10 .*got 10.5"):
        logger.log(10.5, {"charts/x": 1.0})
    with pytest.raises(ValueError, match="values: expected a mapping of metric name -> value, got 0.5"):
        logger.log(11, 0.5)
    with pytest.raises(ValueError, match="plot_every: expected an int >= 1, got 0"):
        MetricLogger(plot_every=0, progress=False)
    with pytest.raises(ValueError, match="keys_to_plot: expected a sequence of metric names, got 'charts/x'"):
        MetricLogger(keys_to_plot="charts/x", progress=False)
    with pytest.raises(ValueError, match="metric name: .*got 'reward'"):
        MetricLogger(keys_to_plot=["reward"], progress=False)
    with pytest.raises(ValueError, match="last_n: expected an int >= 1, got 0"):
        logger.table(last_n=0)


def test_progress_bar_advances_by_the_step_difference_and_shows_latest_metrics():
    with MetricLogger(total=100, desc="ppo", live=False) as logger:
        logger.log(0, {"losses/value_loss": 2.0})
        logger.log(30, {"losses/value_loss": 0.5, "charts/episodic_return": 20.0})
        logger.log(30, {"losses/approx_kl": 0.0123})
        assert logger.bar.n == 30 and logger.bar.total == 100
        logger.log(100, {"losses/approx_kl": 0.01})
        assert logger.bar.n == 100
        assert "value_loss=0.5" in logger.bar.postfix and "approx_kl=0.01" in logger.bar.postfix
    assert logger.bar.disable  # closed by the context manager
    assert MetricLogger(progress=False).bar is None


def test_table_text():
    logger = quiet()
    logger.log(0, {"losses/value_loss": 2.0, "charts/episodic_return": 9.0})
    logger.log(500, {"losses/value_loss": 0.123456, "charts/episodic_return": 187.25})
    assert logger.table() == (
        "metric                  step   value\n"
        "charts/episodic_return   500   187.2\n"
        "losses/value_loss        500  0.1235"
    )
    logger.log(600, {"losses/approx_kl": 0.004})
    assert logger.table(last_n=2) == (
        "metric                  step  value[-2]  value[-1]\n"
        "charts/episodic_return   500          9      187.2\n"
        "losses/approx_kl         600                 0.004\n"
        "losses/value_loss        500          2     0.1235"
    )
    assert quiet().table() == "(no metrics logged yet)"


def test_plot_returns_a_figure_with_one_axis_per_metric():
    logger = quiet(keys_to_plot=["charts/episodic_return", "losses/entropy"])
    for step in range(0, 50, 5):
        logger.log(step, {"charts/episodic_return": step, "losses/entropy": 0.69 - step / 100, "losses/loss": 1.0})
    fig = logger.plot()  # default: keys_to_plot
    assert [ax.get_title() for ax in fig.axes] == ["charts/episodic_return = 45", "losses/entropy = 0.24"]
    fig = logger.plot(keys=logger.names(), smooth_window=3)
    assert len(fig.axes) == 3
    raw, smoothed = fig.axes[0].get_lines()  # faint raw curve and the moving average
    np.testing.assert_allclose(raw.get_xdata(), np.arange(0, 50, 5))
    np.testing.assert_allclose(smoothed.get_ydata()[-1], np.mean([35, 40, 45]))
    with pytest.raises(ValueError, match=r"keys: expected logged metrics from .*got unknown \['rlhf/kl'\]"):
        logger.plot(keys=["rlhf/kl"])
    with pytest.raises(ValueError, match="keys: nothing to plot"):
        quiet().plot()


def test_live_mode_is_off_outside_a_kernel_and_draws_nothing(monkeypatch):
    import IPython.display

    def fail(*args, **kwargs):
        raise AssertionError("display must not be called outside a kernel")

    monkeypatch.setattr(IPython.display, "display", fail)
    logger = MetricLogger(plot_every=1, progress=False)
    assert logger.live is False
    for step in range(20):
        logger.log(step, {"charts/episodic_return": float(step)})
    logger.close()
    assert plt.get_fignums() == []


def test_live_default_follows_the_kernel(monkeypatch):
    import IPython

    class Shell:
        kernel = object()

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    assert MetricLogger(progress=False).live is True
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())  # a terminal IPython: no kernel
    assert MetricLogger(progress=False).live is False


class FakeHandle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj)


def test_live_redraw_updates_one_display_in_place(monkeypatch):
    import IPython.display

    shown = []

    def fake_display(obj, display_id=None):
        handle = FakeHandle()
        shown.append((obj, display_id, handle))
        return handle

    monkeypatch.setattr(IPython.display, "display", fake_display)
    logger = MetricLogger(live=True, plot_every=3, progress=False)
    for step in range(10):  # redraws after calls 3, 6 and 9
        logger.log(step, {"charts/episodic_return": float(step), "losses/value_loss": 1.0 / (step + 1)})
    assert len(shown) == 1  # one output, created on the first redraw ...
    image, display_id, handle = shown[0]
    assert display_id is True  # ... with a display id, so that it can be updated
    assert len(handle.updates) == 2  # ... and updated in place afterwards
    logger.close()  # the final state (call 10) is drawn once more
    assert len(shown) == 1 and len(handle.updates) == 3
    for obj in [image, *handle.updates]:
        assert obj.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []  # no pyplot figure piles up, one per redraw or otherwise
    assert len(logger._live_fig.axes) == 2


def test_module_imports_no_torch_and_no_matplotlib():
    code = ("import sys, course_lib.utils.metrics;"
            "print(sorted(m for m in ('torch', 'matplotlib', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


COURSE_NAMES = [
    "charts/episodic_return", "charts/episode_length", "charts/learning_rate", "losses/policy_loss",
    "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac", "losses/explained_variance",
    "losses/loss", "rlhf/reward", "rlhf/kl", "rlhf/response_length", "dpo/loss", "dpo/reward_margin",
    "dpo/accuracy", "grpo/reward_mean", "grpo/reward_std",
]


def test_metrics_cover_the_course_and_are_well_formed():
    assert set(COURSE_NAMES) <= set(METRICS)
    for name, info in METRICS.items():
        assert NAME_PATTERN.match(name), name
        for text in (info.meaning, info.healthy):
            assert text and "\n" not in text, name


def test_docs_glossary_lists_exactly_the_metrics():
    docs = (ROOT / "docs" / "metrics.md").read_text()
    for name in METRICS:
        assert f"`{name}`" in docs, f"{name} is missing from docs/metrics.md"
    rows = re.findall(r"^\| `([^`]+)` \|", docs, flags=re.MULTILINE)
    assert sorted(rows) == sorted(METRICS), "docs/metrics.md's table rows differ from METRICS"
    header = r"^\| name \| meaning \| healthy values \| what to do when unhealthy \|$"
    assert re.findall(header, docs, flags=re.MULTILINE), "docs/metrics.md: each table needs these four columns"
