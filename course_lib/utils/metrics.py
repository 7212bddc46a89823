"""Metric logging for training loops: history in memory, a progress bar, a live plot, a text table.

Every training loop of the course (PPO on CartPole, RLHF with PPO, DPO and GRPO on an
LLM) logs through one :class:`MetricLogger`, under the fixed, namespaced names of
:data:`METRICS` (CleanRL's convention: ``charts/...`` for what the agent achieves,
``losses/...`` for the update's diagnostics). ``docs/metrics.md`` is the glossary a
learner reads next to the curves: what each metric means, healthy values, what to do
when it is not healthy. ::

    with MetricLogger(total=total_steps, desc="PPO on CartPole") as logger:
        for step in ...:
            logger.log(step, {"charts/episodic_return": ret, "losses/approx_kl": info["approx_kl"]})
    fig = logger.plot(smooth_window=10)
    print(logger.table())

In a Jupyter kernel the logger redraws one figure in place every ``plot_every`` calls, so
the curves grow while training runs; in scripts, tests and the grader it draws nothing
until :meth:`MetricLogger.plot` is called. matplotlib and IPython are imported only when
something is drawn, and torch never (a 0-d tensor is read with ``float(value)``).
"""

from __future__ import annotations

import io
import math
import re
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from course_lib.utils.validation import check_int

NAME_PATTERN = re.compile(r"^[a-z_]+/[a-z0-9_]+$")
"""A metric name is ``namespace/name`` in lower case, e.g. ``losses/value_loss``."""

_POSTFIX_MAX = 4  # metrics shown after the progress bar
_LIVE_COLUMNS = 3  # subplots per row


@dataclass(frozen=True)
class MetricInfo:
    """What a logged metric means and what healthy values look like (the long form is docs/metrics.md)."""

    meaning: str
    """One line: what is measured, and how."""
    healthy: str
    """One line: the values or the trend of a healthy run."""


METRICS: dict[str, MetricInfo] = {
    # What the agent achieves (logged when an episode ends, or once per update).
    "charts/episodic_return": MetricInfo(
        "Undiscounted sum of the rewards of one finished episode.",
        "Trends up and levels off near the task's best; CartPole-v1 is capped at 500, solved at a mean >= 475."),
    "charts/episode_length": MetricInfo(
        "Number of steps of one finished episode (ended by termination or by the time limit).",
        "As the task rewards: up to 500 in CartPole (equal to the return there), down to the maze's shortest path."),
    "charts/learning_rate": MetricInfo(
        "The optimiser's learning rate at this update, after any schedule (e.g. linear annealing to 0).",
        "Follows the schedule: about 2.5e-4 for PPO on CartPole, about 1e-6 to 1e-5 for full LLM fine-tuning."),
    # PPO's update (deep/ppo.py on CartPole and llm/ppo.py for RLHF share these).
    "losses/policy_loss": MetricInfo(
        "PPO's clipped surrogate loss, -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)).",
        "Small and noisy around 0 (advantages are normalised); not a progress measure, it need not go down."),
    "losses/value_loss": MetricInfo(
        "Mean squared error between the value estimate V(s) and its return targets.",
        "Falls early, then follows the scale of the returns; no steady growth or spikes once returns level off."),
    "losses/entropy": MetricInfo(
        "Mean entropy (nats) of the policy's action distribution; for an LLM, of the next-token distribution.",
        "Starts near its maximum (ln 2 = 0.69 for CartPole's two actions) and falls slowly; not near 0 early on."),
    "losses/approx_kl": MetricInfo(
        "Estimated KL between the policy before and after this update, mean((ratio - 1) - log ratio) (k3).",
        "Usually below about 0.02 per PPO update; well above 0.05 means the update was too large."),
    "losses/clipfrac": MetricInfo(
        "Fraction of samples whose probability ratio left [1 - clip_eps, 1 + clip_eps] (the clip was active).",
        "Usually about 0.05 to 0.3; always 0 means the policy does not move."),
    "losses/explained_variance": MetricInfo(
        "1 - Var(returns - V) / Var(returns): the share of the returns' variance the value function predicts.",
        "Rises from about 0 towards 1; negative means the value function is worse than a constant."),
    "losses/loss": MetricInfo(
        "Total loss that is back-propagated: policy_loss - ent_coef * entropy + vf_coef * value_loss.",
        "Finite and not growing; its level alone says little, read its components."),
    # RLHF with PPO on an LLM.
    "rlhf/reward": MetricInfo(
        "Mean reward-model score of the responses sampled at this step, before the KL penalty.",
        "Rises, then flattens; judged together with rlhf/kl and with sampled text."),
    "rlhf/kl": MetricInfo(
        "KL(policy || reference) of the sampled responses: per-token log-ratios summed over the response, averaged.",
        "Starts at 0 and grows slowly to a few nats per response; its mean is never negative."),
    "rlhf/response_length": MetricInfo(
        "Mean number of generated tokens per response.",
        "Stays in the range the task needs and changes slowly; no run-away to max_new_tokens or to empty answers."),
    "rlhf/eos_rate": MetricInfo(
        "Share of the step's responses that ended with end-of-sequence instead of being cut at max_new_tokens.",
        "High (near 1 for a chat model) and steady; falling means answers grow past the length limit."),
    "rlhf/distinct_2": MetricInfo(
        "Distinct word pairs over all word pairs in the step's responses (Li et al. 2016): diversity of the text.",
        "Stays near its starting level; falling towards 0 means the policy repeats itself (mode collapse)."),
    "rlhf/gold_score": MetricInfo(
        "Mean score of the same responses by a second, trusted judge (the simulated annotator), not trained on.",
        "Rises with rlhf/reward; if the reward keeps rising while this falls, the policy is hacking the reward."),
    # Reward model training.
    "sft/loss": MetricInfo(
        "Token-mean negative log-likelihood of the demonstrations' response tokens (prompt and padding masked).",
        "Falls from the model's starting NLL (a few nats) towards 1 or below; rises or jumps: the step is too big."),
    "rm/loss": MetricInfo(
        "Bradley-Terry loss of a training batch, -mean log sigmoid(r(chosen) - r(rejected)).",
        "Starts near ln 2 = 0.693 and falls; a held-out loss that rises while this falls means overfitting."),
    "rm/accuracy": MetricInfo(
        "Share of a training batch's pairs that the reward model orders like the labels (r(chosen) > r(rejected)).",
        "Rises from about 0.5; noisy per batch."),
    "rm/eval_loss": MetricInfo(
        "The Bradley-Terry loss on held-out pairs, after each epoch.",
        "Falls, then flattens; rising means the model memorises the training pairs."),
    "rm/eval_accuracy": MetricInfo(
        "Share of held-out pairs ordered like the labels: how often the reward model agrees with the annotator.",
        "Well above 0.5; its ceiling is the annotator's own consistency (about 0.7 for human labellers)."),
    # DPO.
    "dpo/loss": MetricInfo(
        "-log sigmoid(beta * (chosen log-ratio - rejected log-ratio)), log-ratio = log pi(y|x) - log pi_ref(y|x).",
        "Starts at ln 2 = 0.693 (policy = reference) and falls; held-out loss falls too."),
    "dpo/reward_margin": MetricInfo(
        "Mean implicit reward of the chosen minus the rejected response, beta * (chosen - rejected log-ratio).",
        "0 at the start, then positive and growing, on held-out pairs as well."),
    "dpo/accuracy": MetricInfo(
        "Fraction of pairs whose chosen response gets the higher implicit reward.",
        "Rises from chance (0.5) to well above it on held-out pairs; 1.0 on training pairs is common."),
    "dpo/reward_chosen": MetricInfo(
        "Mean implicit reward of the chosen responses, beta * (log pi(y_w|x) - log pi_ref(y_w|x)).",
        "0 at the start; may rise or fall, only the margin to the rejected responses is trained."),
    "dpo/reward_rejected": MetricInfo(
        "Mean implicit reward of the rejected responses, beta * (log pi(y_l|x) - log pi_ref(y_l|x)).",
        "0 at the start, then below dpo/reward_chosen; above it means swapped labels or a sign bug."),
    # GRPO with verifiable rewards.
    "grpo/reward_mean": MetricInfo(
        "Mean reward of all completions sampled at this step (G per prompt); the success rate for a 0/1 reward.",
        "Rises; for a 0/1 reward it starts strictly between 0 and 1."),
    "grpo/reward_std": MetricInfo(
        "Standard deviation of the rewards within each group of G completions of one prompt, averaged over prompts.",
        "Clearly above 0 (only groups whose completions differ give an advantage); falls as the task is solved."),
    "grpo/zero_std_share": MetricInfo(
        "Share of the step's groups whose G rewards are all equal: their advantages are 0, they give no gradient.",
        "Well below 1; near 1 means almost no learning signal (raise G or the temperature, medium-hard prompts)."),
    "grpo/accuracy": MetricInfo(
        "Share of the step's completions that state the right answer in the required form; logged, not trained on.",
        "Rises from the starting model's rate; flat while grpo/format_rate rises means only the form is learned."),
    "grpo/format_rate": MetricInfo(
        "Share of the step's completions in the required answer form (the parser finds an answer).",
        "Rises fast towards 1 when the format is rewarded; stuck near 0 means no group ever differs."),
    "grpo/response_length": MetricInfo(
        "Mean number of generated tokens per completion, EOS included.",
        "Changes slowly, may fall as a short answer form is learned; climbing to max_new_tokens: check loss_norm."),
    "grpo/kl": MetricInfo(
        "Mean k3 estimate of KL(policy || reference) per completion token, the term weighted by kl_coef; 0 without it.",
        "Starts at 0 and stays small; growing fast means the policy leaves the reference (raise kl_coef)."),
}
"""The fixed metric names of the course, each with its meaning and healthy values."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid metric name (``namespace/name``), else raise ValueError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(
            f"metric name: expected 'namespace/name' in lower case matching {NAME_PATTERN.pattern} "
            f"(e.g. 'losses/value_loss'), got {name!r}"
        )
    return name


def _as_real(name: str, step: int, value) -> float:
    """``float(value)`` for a finite real number (Python, numpy or a 0-d tensor), else ValueError."""
    where = f"{name} at step {step}"
    dtype = str(getattr(value, "dtype", ""))  # 'float32', 'torch.bool', 'complex64', ...
    if (isinstance(value, (str, bytes, bool, complex, np.bool_, np.complexfloating))
            or dtype.endswith("bool") or "complex" in dtype):
        raise ValueError(f"{where}: expected a real number, got {value!r} of type {type(value).__name__}")
    shape = tuple(getattr(value, "shape", ()))
    if shape:
        raise ValueError(f"{where}: expected a single real number (a 0-d array or tensor), got shape {shape}; "
                         f"reduce it first (e.g. .mean())")
    try:
        x = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{where}: expected a real number, got {value!r} of type {type(value).__name__}") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: expected a finite real number, got {x} "
                         f"(training loops never silently continue on NaN or inf)")
    return x


def _in_jupyter_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a ``kernel``), where display updates work."""
    if "IPython" not in sys.modules:  # a kernel imports IPython long before any course code runs
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _grid(n: int) -> tuple[int, int]:
    """(rows, columns) for ``n`` subplots, at most ``_LIVE_COLUMNS`` per row."""
    cols = max(1, min(n, _LIVE_COLUMNS))
    return math.ceil(max(n, 1) / cols), cols

    return int(value)


class MetricLogger:
    """Logs named scalar metrics of a training loop: history, progress bar, live plot, table.

    Args:
        total: the last step, for the progress bar (e.g. total environment steps or updates);
            None when unknown.
        desc: text in front of the progress bar.
        live: redraw a figure in place while training runs. Default (None): True only inside
            a Jupyter kernel; outside one nothing is drawn during training.
        plot_every: redraw the live figure every this many :meth:`log` calls (and once more on
            :meth:`close`); usually 5 to 50, depending on how often :meth:`log` is called.
        keys_to_plot: the metrics of the live figure (and the default of :meth:`plot`), also
            shown first after the progress bar; None: all logged metrics.
        progress: show a tqdm progress bar.

    Attributes:
        history: ``history[name]`` is the list of ``(step, value)`` pairs logged for ``name``.
        bar: the tqdm progress bar, None with ``progress=False``.
        live: whether the live figure is drawn.

    Steps never go back: every :meth:`log` call has a step >= the previous call's (several
    calls may share one step, e.g. the episodic return and the losses of one update).
    """

    def __init__(self, total: int | None = None, desc: str = "", live: bool | None = None, plot_every: int = 10,
                 keys_to_plot: Sequence[str] | None = None, progress: bool = True):
        if total is not None:
            total = check_int("total", total, 1)
        if not isinstance(desc, str):
            raise ValueError(f"desc: expected a str, got {desc!r}")
        if live is not None and not isinstance(live, bool):
            raise ValueError(f"live: expected True, False or None, got {live!r}")
        self.plot_every = check_int("plot_every", plot_every, 1)
        if keys_to_plot is not None:
            if isinstance(keys_to_plot, str) or not isinstance(keys_to_plot, Sequence):
                raise ValueError(f"keys_to_plot: expected a sequence of metric names, got {keys_to_plot!r}")
            keys_to_plot = [check_name(k) for k in keys_to_plot]
            if not keys_to_plot:
                raise ValueError("keys_to_plot: expected at least one metric name or None, got []")
        self.keys_to_plot: list[str] | None = keys_to_plot
        self.live: bool = _in_jupyter_kernel() if live is None else live
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True) if progress else None
        self._last_step: int | None = None
        self._bar_step = 0
        self._recent: dict[str, float] = {}  # latest value per name, most recently logged last
        self._calls = 0
        self._drawn_at = 0  # self._calls at the last live redraw
        self._live_fig = None  # one matplotlib Figure, not registered with pyplot, redrawn in place
        self._display_handle = None

    # ------------------------------------------------------------------ logging

    def log(self, step: int, values: Mapping[str, float] | None = None, /, **metrics: float) -> None:
        """Record the metrics of ``step``, advance the progress bar, redraw the live figure when due.

        Names with a slash cannot be keyword arguments, so pass them as a mapping or unpack one:
        ``log(step, {"losses/value_loss": v})`` or ``log(step, **{"losses/value_loss": v})``.

        Args:
            step: the training step (environment steps, updates, ...), an int >= the previous step.
            values: metric name -> value, optional.
            **metrics: more metric name -> value.

        Raises:
            ValueError: a bad step or metric name, a value that is not a real number, or a NaN or
                infinite value (naming the metric and the step); nothing is recorded then.
        """
        minimum = 0 if self._last_step is None else self._last_step
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or step < minimum:
            raise ValueError(f"step: expected an int >= {minimum} (steps never go back), got {step!r}")
        step = int(step)
        if values is not None and not isinstance(values, Mapping):
            raise ValueError(f"values: expected a mapping of metric name -> value, got {values!r}")
        items = dict(values or {})
        for name in metrics:
            if name in items:
                raise ValueError(f"{name}: given twice at step {step}, in values and as a keyword")
        items.update(metrics)
        checked = {check_name(name): _as_real(name, step, value) for name, value in items.items()}

        for name, x in checked.items():  # all values are valid: record them together
            self.history.setdefault(name, []).append((step, x))
            self._recent.pop(name, None)
            self._recent[name] = x
        self._last_step = step
        self._calls += 1
        if self.bar is not None:
            self.bar.set_postfix(self._postfix(), refresh=False)
            if step > self._bar_step:
                self.bar.update(step - self._bar_step)
                self._bar_step = step
        if self.live and self._calls % self.plot_every == 0:
            self._redraw()

    def _postfix(self) -> dict[str, str]:
        """The few metrics shown after the bar: ``keys_to_plot`` first, then the most recently logged."""
        shown = [k for k in (self.keys_to_plot or []) if k in self._recent][:_POSTFIX_MAX]
        for name in reversed(self._recent):
            if len(shown) >= _POSTFIX_MAX:
                break
            if name not in shown:
                shown.append(name)
        short = [name.split("/", 1)[1] for name in shown]
        labels = [s if short.count(s) == 1 else name for s, name in zip(short, shown)]
        return {label: f"{self._recent[name]:.3g}" for label, name in zip(labels, shown)}

    # ------------------------------------------------------------------ reading

    def names(self) -> list[str]:
        """The logged metric names, sorted (so each namespace stays together)."""
        return sorted(self.history)

    def _known(self, name: str) -> list[tuple[int, float]]:
        if name not in self.history:
            raise KeyError(f"name: expected one of the logged metrics {self.names()}, got {name!r}")
        return self.history[name]

    def as_arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one metric: (n,) int64 and (n,) float64, in logging order."""
        pairs = self._known(name)
        steps = np.array([s for s, _ in pairs], dtype=np.int64)  # (n,)
        values = np.array([v for _, v in pairs], dtype=np.float64)  # (n,)
        return steps, values

    def last(self, name: str) -> float:
        """The latest value of one metric."""
        return self._known(name)[-1][1]

    def table(self, last_n: int = 1) -> str:
        """A fixed-width text table of the latest values, one row per metric.

        Columns: the metric, the step of its latest value, and its last ``last_n`` values
        (``value`` for one, ``value[-3] value[-2] value[-1]`` for three; blank where fewer
        were logged).
        """
        last_n = check_int("last_n", last_n, 1)
        if not self.history:
            return "(no metrics logged yet)"
        heads = ["value"] if last_n == 1 else [f"value[{-i}]" for i in range(last_n, 0, -1)]
        rows = [["metric", "step", *heads]]
        for name in self.names():
            pairs = self.history[name][-last_n:]
            cells = [""] * (last_n - len(pairs)) + [f"{v:.4g}" for _, v in pairs]
            rows.append([name, str(pairs[-1][0]), *cells])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
                 for row in rows]
        return "\n".join(line.rstrip() for line in lines)

    # ------------------------------------------------------------------ plotting

    def _keys(self, keys: Sequence[str] | None) -> list[str]:
        if keys is None:
            keys = self.keys_to_plot or self.names()
        elif isinstance(keys, str):
            raise ValueError(f"keys: expected a sequence of metric names, got {keys!r}")
        return list(keys)

    def _draw(self, fig, keys: list[str], smooth_window: int) -> None:
        """Draw one subplot per key into ``fig`` (cleared first); unused grid cells are removed."""
        from course_lib.utils.plotting import smooth

        fig.clear()
        rows, cols = _grid(len(keys))
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax in axes[len(keys):]:
            ax.remove()
        for ax, name in zip(axes, keys):
            if name not in self.history:
                ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="gray")
                ax.set_title(name, fontsize=10)
                continue
            steps, values = self.as_arrays(name)
            if smooth_window > 1:
                ax.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=1)
                ax.plot(steps, smooth(values, smooth_window), color="tab:blue", linewidth=1.5)
            else:
                ax.plot(steps, values, color="tab:blue", linewidth=1.2, marker="." if len(values) < 30 else None)
            ax.set_title(f"{name} = {values[-1]:.4g}", fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        fig.tight_layout()

    def plot(self, keys: Sequence[str] | None = None, smooth_window: int = 1):
        """A static figure with one subplot per metric (value against step).

        Args:
            keys: the metrics to draw; default ``keys_to_plot``, else all logged metrics.
            smooth_window: >1 draws a trailing moving average over that many points on top
                of the faint raw curve (useful for noisy episodic returns).

        Returns:
            The matplotlib figure.
        """
        smooth_window = check_int("smooth_window", smooth_window, 1)
        if keys is not None:
            unknown = [k for k in self._keys(keys) if k not in self.history]
            if unknown:
                raise ValueError(f"keys: expected logged metrics from {self.names()}, got unknown {unknown}")
        keys = self._keys(keys)
        if not keys:
            raise ValueError("keys: nothing to plot, no metric has been logged yet")
        import matplotlib.pyplot as plt

        rows, cols = _grid(len(keys))
        fig = plt.figure(figsize=(4 * cols, 2.8 * rows))
        self._draw(fig, keys, smooth_window)
        return fig

    def _redraw(self) -> None:
        """Redraw the live figure and update its one display output in place."""
        keys = self._keys(None)
        if not keys:
            return
        from IPython.display import Image, display
        from matplotlib.figure import Figure

        rows, cols = _grid(len(keys))
        if self._live_fig is None:
            self._live_fig = Figure()  # not a pyplot figure: nothing piles up or shows twice in the notebook
        self._live_fig.set_size_inches(4 * cols, 2.6 * rows)
        self._draw(self._live_fig, keys, smooth_window=1)
        buffer = io.BytesIO()
        self._live_fig.savefig(buffer, format="png", dpi=80)
        image = Image(data=buffer.getvalue(), format="png")  # a PNG shows in any notebook front end
        if self._display_handle is None:
            self._display_handle = display(image, display_id=True)
        else:
            self._display_handle.update(image)
        self._drawn_at = self._calls

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Draw the live figure's final state and close the progress bar (safe to call twice)."""
        if self.live and self._calls > self._drawn_at:
            self._redraw()
        if self.bar is not None:
            self.bar.set_postfix(self._postfix(), refresh=False)
            self.bar.close()

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetricLogger({len(self.history)} metrics, last step {self._last_step})"
