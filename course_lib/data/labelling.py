"""Be the annotator: a widget in which the learner picks the better of two responses (lesson 10).

Each click appends one ``{"prompt", "chosen", "rejected"}`` record to a JSONL file
(:mod:`course_lib.data.preferences`), so the learner's own labels train the reward model
next to the simulated annotator's, and survive a kernel restart. ::

    labeller = PreferenceLabeller(prompts, first, second, "runs/my_labels.jsonl")
    labeller.widget          # display it; click "A is better", "B is better" or "Skip"
    pairs, report = load_pairs("runs/my_labels.jsonl")
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Sequence

from course_lib.data.preferences import KEYS


class PreferenceLabeller:
    """Shows prompt i with responses A and B; the buttons save a judgement and move to the next pair.

    Args:
        prompts, first, second: the pairs to judge, equal lengths (A = ``first[i]``, B = ``second[i]``).
        path: the JSONL file to append to (created with its folder; earlier labels are kept and counted).

    Attributes:
        index: the pair on screen (== number of pairs when all are done).
        saved: records in the file, including those from earlier sessions.
        skipped: pairs skipped in this session.
        widget: the ipywidgets box to display.
    """

    def __init__(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str], path: str | Path):
        if not len(prompts) == len(first) == len(second):
            raise ValueError(f"prompts, first, second: expected equal lengths, got {len(prompts)}, {len(first)}, "
                             f"{len(second)}")
        if len(prompts) == 0:
            raise ValueError("prompts: expected at least one pair to label, got none")
        import ipywidgets as w

        self.prompts, self.first, self.second = list(prompts), list(first), list(second)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.saved = sum(1 for line in self.path.open(encoding="utf-8") if line.strip()) if self.path.exists() else 0
        self.index, self.skipped = 0, 0
        self._text = w.HTML()
        self._count = w.HTML()
        self.buttons = {
            "A": w.Button(description="A is better", button_style="success"),
            "B": w.Button(description="B is better", button_style="success"),
            "skip": w.Button(description="Skip (no preference)"),
        }
        for choice, button in self.buttons.items():
            button.on_click(lambda _, c=choice: self.choose(c))
        self.widget = w.VBox([self._text, w.HBox(list(self.buttons.values())), self._count])
        self._render()

    def choose(self, choice: str) -> None:
        """Record ``"A"``, ``"B"`` or ``"skip"`` for the pair on screen (what the buttons call)."""
        if choice not in self.buttons:
            raise ValueError(f"choice: expected 'A', 'B' or 'skip', got {choice!r}")
        if self.index >= len(self.prompts):
            return  # all done: further clicks change nothing
        i = self.index
        if choice == "skip":
            self.skipped += 1
        else:
            a, b = self.first[i], self.second[i]
            chosen, rejected = (a, b) if choice == "A" else (b, a)
            record = dict(zip(KEYS, (self.prompts[i], chosen, rejected)))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.saved += 1
        self.index += 1
        self._render()

    def _render(self) -> None:
        esc = html.escape
        n = len(self.prompts)
        self._count.value = (f"<span class='labeller-count'>saved: {self.saved}</span> &middot; "
                             f"pair {min(self.index + 1, n)} of {n} &middot; skipped: {self.skipped}")
        if self.index >= n:
            self._text.value = f"<b>All {n} pairs done.</b> Labels are in <code>{esc(str(self.path))}</code>."
            for button in self.buttons.values():
                button.disabled = True
            return
        i = self.index
        box = "border:1px solid #ccc;padding:6px;margin:4px 0;white-space:pre-wrap"
        self._text.value = (f"<b>Prompt:</b> {esc(self.prompts[i])}"
                            f"<div style='{box}'><b>A:</b> {esc(self.first[i])}</div>"
                            f"<div style='{box}'><b>B:</b> {esc(self.second[i])}</div>")
