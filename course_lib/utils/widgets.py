"""Small ipywidgets for lessons: concept-check questions with immediate feedback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Question:
    """A multiple-choice concept check."""

    prompt: str
    options: Sequence[str]
    answer: int
    """Index of the correct option."""
    explanation: str
    """Shown after any answer: why the right option is right."""

    def __post_init__(self):
        if len(self.options) < 2:
            raise ValueError(f"options: expected at least 2 options, got {len(self.options)}")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer: expected an index in [0, {len(self.options) - 1}], got {self.answer}")

    def feedback(self, choice: int | None) -> tuple[bool, str]:
        """(correct?, feedback text) for the option index ``choice`` (None: nothing chosen)."""
        if choice is None:
            return False, "Pick an option first."
        if self.options[choice] == self.options[self.answer]:
            return True, f"Correct. {self.explanation}"
        return False, f"Not quite: {self.options[choice]!r} is not it. {self.explanation}"


def multiple_choice(question: Question):
    """An ipywidgets box: radio buttons, a Check button and a feedback line."""
    import ipywidgets as w

    radio = w.RadioButtons(options=list(question.options), value=None, layout=w.Layout(width="max-content"))
    button = w.Button(description="Check", button_style="primary")
    feedback = w.HTML()

    def on_click(_):
        choice = None if radio.value is None else list(question.options).index(radio.value)
        ok, text = question.feedback(choice)
        color = "green" if ok else "#b00"
        feedback.value = f"<span style='color:{color}'>{text}</span>"

    button.on_click(on_click)
    return w.VBox([w.HTML(f"<b>{question.prompt}</b>"), radio, button, feedback])
