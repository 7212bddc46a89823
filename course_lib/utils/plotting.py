"""Plots shared by the lessons and the demo (matplotlib, imported lazily by callers)."""

from __future__ import annotations

from typing import Sequence

from course_lib.utils.validation import check_int


def plot_token_distribution(pairs: Sequence[tuple[str, float]], title: str = "", ax=None):
    """Horizontal bar chart of next-token probabilities, most likely on top.

    Args:
        pairs: ``(token_text, probability)`` pairs, e.g. from
            ``course_lib.llm.generation.next_token_distribution``.
        title: axis title.
        ax: a matplotlib axis to draw into; a new figure when None.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.35 * len(pairs) + 1.2))
    labels = [repr(t) for t, _ in pairs][::-1]  # repr shows leading spaces and newlines
    probs = [p for _, p in pairs][::-1]
    bars = ax.barh(labels, probs, color="tab:blue")
    ax.bar_label(bars, labels=[f"{p:.1%}" for p in probs], padding=2, fontsize=8)
    ax.set_xlabel("probability of being the next token")
    ax.set_xlim(0, min(1.0, max(probs) * 1.25 + 0.02))
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def smooth(values, window: int = 10):
    """Moving average over ``window`` points (shorter at the start), same length as ``values``."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    check_int("window", window, 1)
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (cumsum[i + 1] - cumsum[lo]) / (i + 1 - lo)
    return out


def plot_learning_curves(curves: dict, window: int = 10, ylabel: str = "return per episode", ax=None,
                         title: str = ""):
    """Smoothed learning curves; each value of ``curves`` is (E,) for one run or (seeds, E) for several.

    With several seeds the line is the mean and the band one standard deviation.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, values in curves.items():
        runs = np.atleast_2d(np.asarray(values, dtype=float))  # (seeds, E)
        smoothed = np.stack([smooth(r, window) for r in runs])
        mean = smoothed.mean(axis=0)
        x = np.arange(1, len(mean) + 1)
        (line,) = ax.plot(x, mean, label=name)
        if len(runs) > 1:
            std = smoothed.std(axis=0)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("episode")
    ax.set_ylabel(ylabel + (f" (moving average of {window})" if window > 1 else ""))
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    ax.figure.tight_layout()
    return ax.figure


def plot_regret(curves: dict, ax=None, title: str = "cumulative regret"):
    """Cumulative regret over time; each value is (seeds, T); mean line and a band of one standard error."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, values in curves.items():
        runs = np.atleast_2d(np.asarray(values, dtype=float))  # (seeds, T)
        mean = runs.mean(axis=0)
        sem = runs.std(axis=0) / np.sqrt(len(runs))
        x = np.arange(1, runs.shape[1] + 1)
        (line,) = ax.plot(x, mean, label=f"{name} ({mean[-1]:.1f})")
        ax.fill_between(x, mean - sem, mean + sem, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step (lever presses)")
    ax.set_ylabel("cumulative regret")
    ax.set_title(title)
    ax.legend(title="final mean")
    ax.grid(alpha=0.3)
    ax.figure.tight_layout()
    return ax.figure


_ARROWS = {0: (0, -0.35), 1: (0.35, 0), 2: (0, 0.35), 3: (-0.35, 0)}  # action -> (dx, dy) on screen


def plot_value_heatmap(values, walls, policy=None, terminals=None, ax=None, title: str = "", annotate: bool = True,
                       cmap: str = "viridis"):
    """A value heatmap over a grid, with optional greedy-policy arrows.

    Args:
        values: (H, W) state values (or (H*W,), reshaped with ``walls``' shape).
        walls: (H, W) bool, True on walls (drawn dark, no value).
        policy: (H, W) or (H*W,) int actions 0 up, 1 right, 2 down, 3 left; None for no arrows.
        terminals: (H, W) bool, cells where no arrow is drawn (cheese, traps).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    walls = np.asarray(walls, dtype=bool)
    H, W = walls.shape
    V = np.asarray(values, dtype=float).reshape(H, W)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.6 * W + 1.5, 0.6 * H + 0.8))
    shown = np.ma.masked_where(walls, V)
    image = ax.imshow(shown, cmap=cmap)
    ax.imshow(np.ma.masked_where(~walls, np.ones_like(V)), cmap="gray", vmin=0, vmax=3)
    ax.figure.colorbar(image, ax=ax, fraction=0.04, label="value")
    term = np.zeros_like(walls) if terminals is None else np.asarray(terminals, dtype=bool).reshape(H, W)
    pol = None if policy is None else np.asarray(policy).reshape(H, W)
    for r in range(H):
        for c in range(W):
            if walls[r, c]:
                continue
            if annotate:
                ax.text(c, r + 0.3, f"{V[r, c]:.1f}", ha="center", va="center", fontsize=6, color="white")
            if pol is not None and not term[r, c]:
                dx, dy = _ARROWS[int(pol[r, c])]
                ax.arrow(c - dx / 2, r - dy / 2 - 0.1, dx, dy, head_width=0.18, head_length=0.12,
                         length_includes_head=True, color="white")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_paths(walls, paths: dict, width: int, ax=None, title: str = "", background=None):
    """Draw the state sequences of several agents over a grid maze.

    Args:
        walls: (H, W) bool, True on walls.
        paths: name -> list of states (``row * width + column``).
        width: the maze's width W, to turn states into cells.
        background: optional (H, W) array shown under the paths (e.g. -1 on cliff cells).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    walls = np.asarray(walls, dtype=bool)
    H, W = walls.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * W + 1, 0.5 * H + 0.8))
    base = np.where(walls, 0.2, 0.95) if background is None else np.asarray(background, dtype=float)
    ax.imshow(base, cmap="gray", vmin=0, vmax=1)
    offsets = np.linspace(-0.15, 0.15, max(len(paths), 1))
    for offset, (name, states) in zip(offsets, paths.items()):
        rows, cols = np.divmod(np.asarray(states), width)
        ax.plot(cols + offset, rows + offset, marker="o", markersize=3, linewidth=2, label=f"{name} ({len(states) - 1} steps)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=max(len(paths), 1), fontsize=8)
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure
