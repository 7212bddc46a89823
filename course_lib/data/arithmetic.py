"""A small task with checkable answers for RL with verifiable rewards (lesson 14): one-digit sums and differences.

Every question is ``What is a + b?`` or ``What is a - b?`` with one-digit operands (0 to 9; a >= b for a
difference, so no answer is negative), and the prompt asks for a fixed answer format::

    What is 7 + 5? Reply with 'The answer is <number>.'

The reward is a program, not a model (Lambert et al. 2024, "Tulu 3", call this RL with verifiable
rewards; DeepSeek-AI 2025, "DeepSeek-R1", use rule-based accuracy and format rewards):

* :func:`format_reward`: 1 when the reply states an integer answer in the required form
  ("The answer is 12"), else 0;
* :func:`correctness_reward`: 1 when that stated answer is the right number, else 0 (an answer
  outside the required form does not count, as in R1's rule-based accuracy reward);
* :func:`arithmetic_reward`: correctness + ``FORMAT_WEIGHT`` * format, in {0, 0.5, 1.5}.

Why this task and this format: SmolLM2-135M-Instruct, sampled at temperature 1 with 24 new tokens,
uses the form "The answer is <n>" in about a fifth of its replies when asked to, and states the right
sum in that form in about 5% of them (probed for this lesson: 48 replies per variant). A stricter
format ("End with 'Answer: <n>'") was used in about 2%; two-digit operands were almost never right.
Rewards that are neither always 0 nor always 1 give GRPO's groups the variance it learns from.

Each reward is ``reward_fn(prompts, responses) -> list[float]`` (the ``RewardFn`` of
:mod:`course_lib.llm.ppo`): the expected answer is read back from the question inside the prompt, so a
chat-formatted prompt works as well as the bare question. No torch here (layer ``data``).
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple, Sequence

ANSWER_FORMAT = "Reply with 'The answer is <number>.'"
"""The instruction appended to every question: the required answer format."""

FORMAT_WEIGHT = 0.5
"""Weight of the format reward in :func:`arithmetic_reward` (correctness weighs 1)."""


class Question(NamedTuple):
    """One arithmetic question: ``a op b`` with op ``"+"`` or ``"-"``."""

    a: int
    op: str
    b: int

    @property
    def answer(self) -> int:
        """The correct result."""
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def text(self) -> str:
        """The user message: the question and the required answer format."""
        return f"What is {self.a} {self.op} {self.b}? {ANSWER_FORMAT}"


ALL_QUESTIONS: list[Question] = ([Question(a, "+", b) for a in range(10) for b in range(10)]
                                 + [Question(a, "-", b) for a in range(10) for b in range(a + 1)])
"""All 155 questions: 100 sums and 55 differences (a >= b) of one-digit numbers."""

_shuffled = random.Random(14).sample(ALL_QUESTIONS, len(ALL_QUESTIONS))  # a fixed split, the same everywhere
HELD_OUT_QUESTIONS: list[Question] = sorted(_shuffled[:32])
"""32 questions never trained on: the held-out evaluation."""
TRAIN_QUESTIONS: list[Question] = sorted(_shuffled[32:])
"""The other 123 questions: GRPO's training prompts."""

# A statement is the phrase "the answer is" (any case); what follows it must be an optional ":" / "=" / "**", then an
# integer, optionally signed, optionally "12.0", and not followed by ",<digit>" (a thousands separator) or a digit.
_PHRASE = re.compile(r"the answer is", re.IGNORECASE)
_NUMBER = re.compile(r"\s*[:=]?\s*\**\s*([+-]?\d+)(\.\d+)?(?!,?\d)")
_QUESTION = re.compile(r"What is (\d+) ([+-]) (\d+)\?")


def parse_answer(response: str) -> int | None:
    """The integer the response states in the required form "The answer is <n>", or None.

    The last statement counts (a reply may correct itself): the text after the LAST "the answer is"
    decides, and when it is not an integer in the accepted form the reply states no answer (None), even
    if an earlier statement had one ("The answer is 3. Actually the answer is 1,200." -> None: a reply
    that hedges with a second, unreadable answer is not credited with its first). Accepted after the
    phrase: any letter case, a colon or "=" or bold markers before the number, a sign, a trailing ".0"
    ("The answer is 12.0" -> 12). Not accepted (None): no statement, a word instead of digits ("The
    answer is twelve"), a non-integer ("12.5"), a number with a thousands comma ("1,200": no answer
    here is that large).
    """
    if not isinstance(response, str):
        raise ValueError(f"response: expected a str, got {type(response).__name__}")
    statements = list(_PHRASE.finditer(response))
    if not statements:
        return None
    m = _NUMBER.match(response, statements[-1].end())  # only the last statement counts
    if m is None:
        return None  # "The answer is twelve", "The answer is 1,200"
    whole, fraction = m.group(1), m.group(2)
    if fraction is not None and set(fraction[1:]) != {"0"}:
        return None  # "The answer is 12.5": a non-integer answer
    return int(whole)


def expected_answer(prompt: str) -> int:
    """The correct answer to the (last) question inside ``prompt``, bare or chat-formatted."""
    found = _QUESTION.findall(prompt) if isinstance(prompt, str) else []
    if not found:
        raise ValueError(f"prompt: expected a question like 'What is 3 + 4?' inside it, got {prompt!r:.120}")
    a, op, b = found[-1]
    return Question(int(a), op, int(b)).answer


def _check(prompts: Sequence[str], responses: Sequence[str]) -> None:
    if isinstance(prompts, str) or isinstance(responses, str) or len(prompts) != len(responses):
        raise ValueError(f"prompts, responses: expected two lists of one length, got {type(prompts).__name__} "
                         f"of {len(prompts)} and {type(responses).__name__} of {len(responses)}")


def format_reward(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """1.0 per response that states an integer answer in the required form (:func:`parse_answer`), else 0.0."""
    _check(prompts, responses)
    return [float(parse_answer(r) is not None) for r in responses]


def correctness_reward(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """1.0 per response whose stated answer (:func:`parse_answer`) is the right result of its prompt's question."""
    _check(prompts, responses)
    return [float(parse_answer(r) == expected_answer(p)) for p, r in zip(prompts, responses)]


def arithmetic_reward(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """correctness + FORMAT_WEIGHT * format: 0 (no answer in form), 0.5 (in form, wrong), 1.5 (in form, right)."""
    return [c + FORMAT_WEIGHT * f for c, f in zip(correctness_reward(prompts, responses),
                                                   format_reward(prompts, responses))]
