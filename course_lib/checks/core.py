"""The machinery shared by every exercise check."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

LOG_ENV_VAR = "COURSE_KIT_CHECK_LOG"


class CheckFailed(AssertionError):
    """A student's function gave a wrong answer; the message says where and how."""


@dataclass
class Case:
    """One input to try: positional ``args``, keyword ``kwargs``, and what it tests."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    about: str = ""
    """What this case probes, e.g. "temperature 0.5 sharpens the distribution"."""
    hint: str = ""
    """Shown when this case fails."""


@dataclass(frozen=True)
class Exercise:
    """Everything needed to check one exercise, in a notebook or in the grader.

    The notebook's check runs ``cases``; the autograder runs ``cases`` and
    ``hidden_cases`` (never shown in the notebooks), each result compared with
    ``reference`` in the trusted grader process.
    """

    name: str
    """The student's function name, e.g. ``q_learning_target``."""
    reference: Callable
    """The library's correct implementation."""
    cases: Callable[[], list[Case]]
    """Builds the seeded public cases (deterministic: the same list every call)."""
    hidden_cases: Callable[[], list[Case]]
    """Builds the grader-only cases; at least one must defeat answers that return zeros,
    an empty list or their input unchanged."""
    adapt: Callable[[Callable], Callable] | None = None
    """Wraps the student's function and the reference alike (e.g. copy inputs, seed a generator,
    return what an in-place function changed); None calls them as they are. It runs in the grader's sandbox,
    so it lives in :mod:`course_lib.harness` and pickles by reference (a module-level function there, or a
    :func:`functools.partial` of one; never a lambda or a closure); the cases' inputs pickle the same way."""
    names: tuple[str, ...] | None = None
    """Labels for the items of a tuple result, used in messages."""
    rtol: float = 1e-5
    atol: float = 1e-6
    kind: str = "function"
    """``function``: the student writes a function; ``answer``: the student assigns a value (a
    concept-check answer) to a variable named ``name``, and ``reference()`` returns the right one."""
    comparer: Callable[[Any, Any], str | None] | None = None
    """Replaces :func:`compare` (e.g. quiz answers: name the wrong items without revealing the right ones)."""
    twins: tuple[str, ...] = ()
    """The library functions or classes that are this exercise's answer, as dotted paths (e.g.
    ``"course_lib.rl.advantages.gae"`` for GAE): in the grader's sandbox they exist only as stubs that raise, and
    their files are unreadable, while the student's code runs (:mod:`course_lib.checks` is always denied)."""
    explanation: str = ""
    """Printed under the verdict once the answer is right (a concept check's "why"); never shown before."""

    def call(self, fn: Callable) -> Callable:
        """``fn`` as the cases call it (through ``adapt``)."""
        return self.adapt(fn) if self.adapt is not None else fn

    def student_callable(self, obj: Any) -> Any:
        """What the cases call for the student's object: the function, or a function returning the answer."""
        if self.kind == "answer":
            return lambda: obj
        return self.call(obj) if callable(obj) else obj

    def compare(self, expected: Any, got: Any) -> str | None:
        if self.comparer is not None:
            return self.comparer(expected, got)
        return compare(expected, got, rtol=self.rtol, atol=self.atol, names=self.names)

    def check(self, obj: Any, quiet: bool = False) -> "CheckResult":
        """The notebook check: run the public cases against the reference."""
        __tracebackhide__ = True
        return run_check(self.name, self.student_callable(obj), self.call(self.reference), self.cases(),
                         rtol=self.rtol, atol=self.atol, names=self.names, quiet=quiet, comparer=self.comparer,
                         explanation=self.explanation)


@dataclass
class CheckResult:
    """The outcome of one check: ``pass``, ``fail``, ``not-implemented`` or ``error``."""

    exercise: str
    status: str
    message: str
    passed: int
    total: int
    hint: str = ""
    """What to try next when the check did not pass: the failing case's hint, and where the stronger one is."""

    def _ipython_display_(self) -> None:
        """A notebook shows a check's verdict once: nothing more when the check already printed it, else the verdict."""
        if not self.__dict__.get("_printed", False):
            print(f"[{'x' if self.status == 'pass' else ' '}] {self.message}")


SMALL = 16
"""Arrays and tensors with at most this many entries are shown in full in a failing check's message."""


def _short(values: Any) -> str:
    """Nested lists of numbers with floats at 4 significant digits (enough to find the case, short to read)."""
    if isinstance(values, list):
        return "[" + ", ".join(_short(v) for v in values) + "]"
    return f"{values:.4g}" if isinstance(values, float) else repr(values)


def _describe(x: Any) -> str:
    """How a failing check shows one input: in full when small, else its shape and dtype."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            if x.numel() <= SMALL:
                return f"tensor({_short(x.detach().cpu().tolist())}, dtype={x.dtype})"
            return f"tensor(shape={tuple(x.shape)}, dtype={x.dtype})"
    except ImportError:
        pass
    if isinstance(x, np.ndarray):
        if x.size <= SMALL:
            return f"array({_short(x.tolist())}, dtype={x.dtype})"
        return f"array(shape={x.shape}, dtype={x.dtype})"
    text = repr(x)
    return text if len(text) <= 200 else text[:197] + "..."


def _describe_case(case: Case) -> str:
    parts = [_describe(a) for a in case.args] + [f"{k}={_describe(v)}" for k, v in case.kwargs.items()]
    return ", ".join(parts)


def _as_array(x: Any) -> np.ndarray | None:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
    except ImportError:
        pass
    if isinstance(x, np.ndarray):
        return x
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def compare(expected: Any, got: Any, *, rtol: float = 1e-5, atol: float = 1e-6, path: str = "result",
            names: tuple[str, ...] | None = None) -> str | None:
    """Compare strictly; return None when equal, else a one-line description of the first mismatch.

    Types must match in kind (tensor vs tensor, tuple vs tuple, number vs
    number), shapes and dtype kinds must match, floats must be finite and
    within tolerance. Comparison is by value, never via the student object's
    own ``__eq__``.
    """
    exp_arr = _as_array(expected)
    if exp_arr is not None:
        got_arr = _as_array(got)
        if got_arr is None or type(got).__module__.split(".")[0] != type(expected).__module__.split(".")[0]:
            return f"{path}: expected a {type(expected).__name__}, got {type(got).__name__}"
        if got_arr.shape != exp_arr.shape:
            return f"{path}: expected shape {tuple(exp_arr.shape)}, got shape {tuple(got_arr.shape)}"
        if got_arr.dtype.kind != exp_arr.dtype.kind:
            return f"{path}: expected dtype {expected.dtype}, got dtype {got.dtype}"
        if exp_arr.dtype.kind == "f":
            bad = ~np.isfinite(got_arr)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                return f"{path}: non-finite value {_fmt(got_arr[idx])} at index {list(idx)}"
            close = np.isclose(got_arr, exp_arr, rtol=rtol, atol=atol)
        else:
            close = got_arr == exp_arr
        if not close.all():
            idx = tuple(int(i) for i in np.argwhere(~close)[0])
            return f"{path}: first mismatch at index {list(idx)}: expected {_fmt(exp_arr[idx])}, got {_fmt(got_arr[idx])}"
        return None
    if isinstance(expected, (tuple, list)):
        if type(got) is not type(expected):
            article = "an" if type(expected).__name__[0].lower() in "aeiou" else "a"
            return f"{path}: expected {article} {type(expected).__name__} of {len(expected)} items, got {type(got).__name__}"
        if len(got) != len(expected):
            return f"{path}: expected {len(expected)} items, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            item = f"{path}[{i}] ({names[i]})" if names and len(names) == len(expected) else f"{path}[{i}]"
            msg = compare(e, g, rtol=rtol, atol=atol, path=item)
            if msg:
                return msg
        return None
    if expected is None:
        return None if got is None else f"{path}: expected None, got {_describe(got)}"
    if isinstance(expected, bool) or isinstance(expected, str):
        if type(got) is not type(expected) or got != expected:
            return f"{path}: expected {expected!r}, got {_describe(got)}"
        return None
    if isinstance(expected, (int, float, np.integer, np.floating)):
        if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)):
            return f"{path}: expected a number, got {type(got).__name__}"
        if not math.isfinite(float(got)):
            return f"{path}: expected a finite number, got {got!r}"
        if not math.isclose(float(got), float(expected), rel_tol=rtol, abs_tol=atol):
            return f"{path}: expected {_fmt(expected)}, got {_fmt(got)}"
        return None
    raise TypeError(f"compare: no rule for expected values of type {type(expected).__name__}")


def normalise_answer(x: Any) -> Any:
    """A concept-check answer as it is compared: strings without case and with single spaces, inside containers too."""
    if isinstance(x, str):
        return " ".join(x.split()).lower()
    if isinstance(x, dict):
        return {normalise_answer(k): normalise_answer(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [normalise_answer(v) for v in x]
    return x


def _normalise_keys(feedback: dict) -> dict:
    """Feedback with its keys (items, choices) normalised like answers and its messages kept as written."""
    return {normalise_answer(k): (_normalise_keys(v) if isinstance(v, dict) else v) for k, v in feedback.items()}


def _same_answer(expected: Any, got: Any) -> bool:
    e, g = normalise_answer(expected), normalise_answer(got)
    return type(e) is type(g) and e == g


def compare_answers(expected: Any, got: Any, feedback: dict | None = None) -> str | None:
    """Compare concept-check answers without revealing the right ones.

    ``expected`` is a dict item -> choice (wrong items are named, with the
    student's choice) or a single choice such as the letter of a statement.
    Strings compare without case and extra spaces ("c" is "C").

    ``feedback`` explains a wrong choice without naming the right one: for a
    single choice, wrong choice -> why it is wrong; for a dict, item -> {wrong
    choice -> why}. Choices it does not cover get the generic message.
    """
    feedback = _normalise_keys(feedback or {})
    if not isinstance(expected, dict):
        if _same_answer(expected, got):
            return None
        why = feedback.get(normalise_answer(got)) if isinstance(normalise_answer(got), str) else None
        return f"your answer {got!r} is not the right one yet" + (f": {why}" if why else "")
    if not isinstance(got, dict):
        return f"answers: expected a dict with the keys {sorted(expected)}, got {type(got).__name__}"
    given = {normalise_answer(k): v for k, v in got.items()}
    missing = [k for k in expected if normalise_answer(k) not in given]
    if missing:
        return f"answers: these items have no answer yet: {missing}"
    wrong = [k for k in expected if not _same_answer(expected[k], given[normalise_answer(k)])]
    if not wrong:
        return None
    lines = []
    for k in wrong:
        choice = given[normalise_answer(k)]
        per_item = feedback.get(normalise_answer(k), {})
        why = per_item.get(normalise_answer(choice)) if isinstance(per_item, dict) and isinstance(choice, str) else None
        lines.append(f"{k!r} (you chose {choice!r})" + (f": {why}" if why else ""))
    return f"{len(wrong)} of {len(expected)} answers are not right yet: " + "; ".join(lines)


def stronger_hint(exercise: str) -> str:
    """The tier-2 hint of an exercise (its check module's ``HINTS``), or "" when it has none."""
    module = _module_of(exercise)
    return getattr(module, "HINTS", {}).get(exercise, "") if module is not None else ""


def _module_of(exercise: str):
    """The lesson module that specifies ``exercise`` (through the registry), or None."""
    import importlib

    from course_lib.checks import LESSON_OF

    lesson = LESSON_OF.get(exercise)
    return importlib.import_module(f"course_lib.checks.lesson{lesson}") if lesson is not None else None


def hint(exercise: str, tier: int = 2) -> None:
    """Print a hint for ``exercise`` (the name of the function or answer to write).

    Tier 1 is the nudge in the exercise's docstring, tier 2 a stronger one
    (printed here), tier 3 the check's own message on the case that fails.
    None of them is the answer's code.

    Raises:
        ValueError: no exercise has that name, or ``tier`` is not 1, 2 or 3.
    """
    if not isinstance(tier, int) or tier not in (1, 2, 3):
        raise ValueError(f"tier: expected 1, 2 or 3, got {tier!r}")
    module = _module_of(exercise) if isinstance(exercise, str) else None
    if module is None or exercise not in getattr(module, "EXERCISES", {}):
        raise ValueError(f"exercise: expected the name of an exercise, e.g. 'gae_advantages', got {exercise!r}")
    if tier == 1:
        print(f"{exercise}, tier 1: the Hint in its docstring (or the text above its cell). Stuck? hint({exercise!r}, 2)")
    elif tier == 2:
        text = stronger_hint(exercise)
        print(f"{exercise}, tier 2: " + (text or "this exercise has no stronger hint; run its check and read tier 3."))
    else:
        print(f"{exercise}, tier 3: run its check cell; when a case fails, the message names the input, "
              "the expected and the got value, and a hint for that case.")


def _log(result: CheckResult) -> None:
    path = os.environ.get(LOG_ENV_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dataclasses.asdict(result)) + "\n")


def run_check(
    exercise: str,
    student_fn: Callable,
    reference_fn: Callable,
    cases: list[Case],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    names: tuple[str, ...] | None = None,
    quiet: bool = False,
    comparer: Callable[[Any, Any], str | None] | None = None,
    explanation: str = "",
) -> CheckResult:
    """Run ``student_fn`` and ``reference_fn`` on each case and compare.

    ``names`` labels the items of a tuple result in messages, e.g. ``("probs", "ids")``.

    Raises:
        NotImplementedError: the student's function is still the stub.
        CheckFailed: a case gave a wrong answer or raised; the message names
            the case's input, the first mismatch and a hint.
    """
    __tracebackhide__ = True  # IPython and pytest show the student the verdict, not this frame
    more = (f"\nStill stuck? hint({exercise!r}, 2) prints a stronger hint." if stronger_hint(exercise) else "")
    if not callable(student_fn):
        raise TypeError(f"{exercise}: expected your function, got {type(student_fn).__name__}")
    for i, case in enumerate(cases, start=1):
        expected = reference_fn(*case.args, **case.kwargs)
        inputs = _describe_case(case)
        where = f"failed at case {i} of {len(cases)} ({case.about}" + (f"; input: {inputs})" if inputs else ")")
        try:
            got = student_fn(*case.args, **case.kwargs)
        except NotImplementedError:
            result = CheckResult(exercise, "not-implemented", f"{exercise}: not implemented yet", 0, len(cases))
            _log(result)
            if not quiet:
                print(f"[ ] {exercise}: not implemented yet; fill in the TODO, then run this cell again.")
            raise
        except Exception as exc:  # the student's code crashed on this input
            message = f"{exercise}: {where}: raised {type(exc).__name__}: {exc}"
            result = CheckResult(exercise, "error", message, i - 1, len(cases), case.hint)
            _log(result)
            raise CheckFailed(message + (f"\nHint: {case.hint}" if case.hint else "") + more) from exc
        mismatch = comparer(expected, got) if comparer else compare(expected, got, rtol=rtol, atol=atol, names=names)
        if mismatch:
            message = f"{exercise}: {where}: {mismatch}"
            result = CheckResult(exercise, "fail", message, i - 1, len(cases), case.hint)
            _log(result)
            raise CheckFailed(message + (f"\nHint: {case.hint}" if case.hint else "") + more)
    verdict = f"all {len(cases)} cases passed" if len(cases) > 1 else "right"
    result = CheckResult(exercise, "pass", f"{exercise}: {verdict}", len(cases), len(cases))
    _log(result)
    if not quiet:
        print(f"[x] {result.message}" + (f"\nWhy: {explanation}" if explanation else ""))
        result._printed = True  # the notebook's display of the returned result then adds nothing
    return result


def check_functions(exercises: dict[str, Exercise]) -> Callable[[str], Callable]:
    """A lesson module's ``__getattr__``: ``check_x`` is the notebook check of ``exercises["x"]``, built on demand
    (so every check is one line of the lesson's exercise specs, not a hand-written wrapper)::

        __getattr__ = check_functions(EXERCISES)
    """

    def module_getattr(name: str) -> Callable:
        exercise = exercises.get(name[len("check_"):]) if name.startswith("check_") else None
        if exercise is None:
            raise AttributeError(name)

        def check(obj: Any, quiet: bool = False) -> CheckResult:
            __tracebackhide__ = True
            return exercise.check(obj, quiet=quiet)

        check.__name__ = check.__qualname__ = name
        check.__doc__ = f"Check a student's ``{exercise.name}`` on the exercise's public cases."
        return check

    return module_getattr
