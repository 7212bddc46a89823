"""Plots shared by the lessons and the demo (matplotlib, imported lazily by callers)."""

from __future__ import annotations

from typing import Sequence


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
