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


def _frame_to_png(frame) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    plt.imsave(buf, frame, format="png")
    return buf.getvalue()


def env_stepper(env, action_names: Sequence[str] = ("up", "right", "down", "left"), seed: int = 0):
    """Buttons for each action, the env's rgb frame redrawn after every step, the reward and the return so far.

    ``env`` must have ``render_mode="rgb_array"``. Returns the widget box; the
    attributes ``buttons`` (one per action), ``reset_button``, ``status`` and
    ``image`` let tests and notebooks drive it.
    """
    import ipywidgets as w

    image = w.Image(format="png")
    status = w.HTML()
    state = {"return": 0.0, "steps": 0, "done": False}

    def show(text: str) -> None:
        image.value = _frame_to_png(env.render())
        status.value = text

    def reset(_=None):
        obs, _info = env.reset(seed=seed)
        state.update({"return": 0.0, "steps": 0, "done": False})
        show(f"state {obs}: press a button to move")

    def act(action: int):
        if state["done"]:
            status.value += " <b>Episode over: press reset.</b>"
            return
        obs, reward, terminated, truncated, _ = env.step(action)
        state["return"] += float(reward)
        state["steps"] += 1
        state["done"] = terminated or truncated
        end = " <b>Terminated!</b>" if terminated else (" <b>Time limit.</b>" if truncated else "")
        show(f"step {state['steps']}: action {action_names[action]}, reward {reward:+.0f}, "
             f"return so far {state['return']:+.0f}, state {obs}{end}")

    buttons = []
    for a, name in enumerate(action_names):
        b = w.Button(description=name)
        b.on_click(lambda _b, a=a: act(a))
        buttons.append(b)
    reset_button = w.Button(description="reset", button_style="warning")
    reset_button.on_click(reset)
    reset()
    box = w.VBox([w.HBox(buttons + [reset_button]), image, status])
    box.buttons, box.reset_button, box.status, box.image, box.episode = buttons, reset_button, status, image, state
    return box


def policy_player(env, policy, seed: int = 0, max_steps: int = 200):
    """Play a policy step by step: a 'next step' button and a 'play to the end' button over the rgb frame.

    Args:
        policy: a function state -> action, e.g. ``lambda s: int(Q[s].argmax())``.
    """
    import ipywidgets as w

    image = w.Image(format="png")
    status = w.HTML()
    state = {"obs": None, "return": 0.0, "steps": 0, "done": False}

    def reset(_=None):
        state.update({"obs": env.reset(seed=seed)[0], "return": 0.0, "steps": 0, "done": False})
        image.value = _frame_to_png(env.render())
        status.value = "ready"

    def step(_=None):
        if state["done"] or state["steps"] >= max_steps:
            return
        action = int(policy(state["obs"]))
        obs, reward, terminated, truncated, _ = env.step(action)
        state.update({"obs": obs, "return": state["return"] + float(reward), "steps": state["steps"] + 1,
                      "done": terminated or truncated})
        image.value = _frame_to_png(env.render())
        status.value = f"step {state['steps']}: action {action}, return {state['return']:+.0f}" + (
            " (done)" if state["done"] else "")

    def play(_=None):
        while not state["done"] and state["steps"] < max_steps:
            step()

    next_button, play_button, reset_button = (w.Button(description=d) for d in ("next step", "play to the end", "reset"))
    next_button.on_click(step)
    play_button.on_click(play)
    reset_button.on_click(reset)
    reset()
    box = w.VBox([w.HBox([next_button, play_button, reset_button]), image, status])
    box.next_button, box.play_button, box.reset_button, box.status, box.episode = (
        next_button, play_button, reset_button, status, state)
    return box


@dataclass(frozen=True)
class Matching:
    """A matching concept check: pair each item with one of the labels.

    Example: items are parts of the robot story ("the robot", "the maze", ...),
    labels are RL terms ("agent", "environment", ...).
    """

    prompt: str
    items: Sequence[str]
    labels: Sequence[str]
    answers: Sequence[str]
    """The correct label for each item, in order."""
    explanations: Sequence[str] = ()
    """Optional: one explanation per item, shown when that item is wrong."""

    def __post_init__(self):
        if len(self.answers) != len(self.items):
            raise ValueError(f"answers: expected {len(self.items)} (one per item), got {len(self.answers)}")
        unknown = [a for a in self.answers if a not in self.labels]
        if unknown:
            raise ValueError(f"answers: expected labels from {list(self.labels)}, got {unknown}")
        if self.explanations and len(self.explanations) != len(self.items):
            raise ValueError(f"explanations: expected {len(self.items)} or none, got {len(self.explanations)}")

    def feedback(self, chosen: Sequence[str | None]) -> tuple[int, list[str]]:
        """(number correct, one feedback line per item) for the chosen labels."""
        if len(chosen) != len(self.items):
            raise ValueError(f"chosen: expected {len(self.items)} labels, got {len(chosen)}")
        lines, correct = [], 0
        for i, (item, pick, answer) in enumerate(zip(self.items, chosen, self.answers)):
            if pick == answer:
                correct += 1
                lines.append(f"✓ {item}: {answer}")
            elif pick is None:
                lines.append(f"? {item}: not answered yet")
            else:
                why = f" {self.explanations[i]}" if self.explanations else ""
                lines.append(f"✗ {item}: not {pick}.{why}")
        return correct, lines


def matching_quiz(quiz: Matching):
    """One dropdown per item, a Check button, and per-item feedback (right items are confirmed)."""
    import ipywidgets as w

    dropdowns = [w.Dropdown(options=[("choose...", None)] + [(lbl, lbl) for lbl in quiz.labels], value=None,
                            description=item, style={"description_width": "initial"},
                            layout=w.Layout(width="max-content")) for item in quiz.items]
    button = w.Button(description="Check", button_style="primary")
    feedback = w.HTML()

    def on_click(_):
        correct, lines = quiz.feedback([d.value for d in dropdowns])
        color = "green" if correct == len(quiz.items) else "#b00"
        feedback.value = (f"<span style='color:{color}'><b>{correct}/{len(quiz.items)} correct.</b></span><br>"
                          + "<br>".join(lines))

    button.on_click(on_click)
    box = w.VBox([w.HTML(f"<b>{quiz.prompt}</b>"), *dropdowns, button, feedback])
    box.dropdowns, box.check_button, box.feedback = dropdowns, button, feedback
    return box
