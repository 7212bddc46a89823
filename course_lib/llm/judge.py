"""RLAIF and Constitutional AI (lesson 13): the LLM as a judge, a written constitution, critique and revise.

Reinforcement learning from AI feedback replaces the human annotator with a language model that
reads a short written list of principles, a *constitution* (Bai et al. 2022, "Constitutional AI:
Harmlessness from AI Feedback"; Lee et al. 2023, "RLAIF"). Three uses of the judge here:

* **Pairwise preference** (Bai et al. 2022, Section 4.1): show the principles, the user's message and two
  replies A and B, ask "Which reply is better? Answer A or B." Read the answer two ways:
  free text, parsed by :func:`parse_verdict` (an answer it cannot read is *unparseable* and counted),
  or the next-token log-probabilities of the two answer tokens, ``log p(A) - log p(B)``
  (:func:`option_margins`), which always gives a number. Small models prefer whichever reply comes
  first (or second) regardless of content, *position bias* (Zheng et al. 2023, "Judging LLM-as-a-judge"),
  so :func:`judge_pairs` asks in both orders: the symmetric margin ``(m(a, b) - m(b, a)) / 2`` cancels
  a constant bias, and a label counts as *consistent* when both orders pick the same reply.
* **Per-principle critique**: does a reply follow one principle? Read from ``log p(Yes) - log p(No)``
  (:func:`principle_margins`) and, for reading, a generated free-text critique.
* **Critique and revise** (Bai et al. 2022, Section 3.1): sample a reply, ask the model to critique it
  under a principle, then to rewrite it given the critique (:func:`critique_and_revise`). The revisions
  become SFT data (:func:`course_lib.llm.sft.sft`); AI-labelled pairs become DPO data
  (:func:`ai_preference_pairs`, :func:`course_lib.llm.dpo.train_dpo`).

Every prompt here is built from the plain user message (:func:`user_message` recovers it from a
chat-formatted prompt) and formatted with the tokenizer's chat template.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from course_lib.data.preferences import PreferencePair
from course_lib.llm.generation import chat_prompt, generate
from course_lib.llm.tokens import keep_last_logits, position_ids
from course_lib.utils.validation import check_float, check_int

# ---- the constitution -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principle:
    """One principle of the constitution."""

    name: str
    """A short name, e.g. ``"Kind"``."""
    text: str
    """The principle itself, one sentence, e.g. ``"Be warm, kind and friendly towards the user."``."""


_PRINCIPLE_LINE = re.compile(r"^\s*(\d+)\.\s+\*\*(.+?)\.?\*\*\s*(.+?)\s*$")


def load_constitution(path: str | Path | None = None) -> list[Principle]:
    """The principles of a constitution file: lines ``N. **Name.** Text.``, in order (other lines ignored).

    Args:
        path: a markdown file; default the course's ``course_lib/data/constitution.md``.

    Raises:
        ValueError: the file holds no principle line.
    """
    if path is None:
        from importlib.resources import files

        text = (files("course_lib.data") / "constitution.md").read_text(encoding="utf-8")
        where = "course_lib/data/constitution.md"
    else:
        text, where = Path(path).read_text(encoding="utf-8"), str(path)
    principles = [Principle(m.group(2).strip(), m.group(3).strip())
                  for m in map(_PRINCIPLE_LINE.match, text.splitlines()) if m]
    if not principles:
        raise ValueError(f"path: expected lines like '1. **Kind.** Be kind.' in {where}, found none")
    return principles


def format_principles(principles: Sequence[Principle]) -> str:
    """The principles as a numbered list, one per line: ``1. Kind: Be warm, ...``."""
    principles = list(principles)
    if not principles or not all(isinstance(p, Principle) for p in principles):
        raise ValueError(f"principles: expected a non-empty list of Principle, got {principles!r:.80}")
    return "\n".join(f"{i}. {p.name}: {p.text}" for i, p in enumerate(principles, start=1))


def user_message(formatted: str) -> str:
    """The user's message inside a chat-formatted prompt (SmolLM2's ``<|im_start|>user ... <|im_end|>``);
    a string without chat markers is returned stripped, as it is."""
    if not isinstance(formatted, str):
        raise ValueError(f"formatted: expected a string, got {type(formatted).__name__}")
    match = re.search(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", formatted, flags=re.S)
    return (match.group(1) if match else formatted).strip()


# ---- prompts ----------------------------------------------------------------------------------------

PAIRWISE_QUESTION = "Which reply is better? Answer A or B."
ANSWER_PREFIX = "The better reply is Reply"
"""Opens the judge's answer for the log-prob reading, so that the next token is " A" or " B"."""


def pairwise_message(principles: Sequence[Principle], prompt: str, reply_a: str, reply_b: str) -> str:
    """The judge's user message: the principles, the user's message and replies A and B, and the question."""
    return (f"Judge two replies to a message by these principles:\n{format_principles(principles)}\n\n"
            f"Message: {user_message(prompt)}\n\nReply A: {reply_a.strip()}\n\nReply B: {reply_b.strip()}\n\n"
            f"{PAIRWISE_QUESTION}")


def pairwise_prompt(tokenizer, principles: Sequence[Principle], prompt: str, reply_a: str, reply_b: str,
                    answer_prefix: str = "") -> str:
    """:func:`pairwise_message` chat-formatted, the assistant's turn opened (and started with ``answer_prefix``)."""
    return chat_prompt(tokenizer, pairwise_message(principles, prompt, reply_a, reply_b)) + answer_prefix


def critique_message(principle: Principle, prompt: str, reply: str) -> str:
    """Ask for a critique of ``reply`` under one principle, ending in a yes/no question."""
    if not isinstance(principle, Principle):
        raise ValueError(f"principle: expected a Principle, got {type(principle).__name__}")
    return (f"Principle: {principle.text}\n\nMessage: {user_message(prompt)}\n\nReply: {reply.strip()}\n\n"
            f"Does the reply follow the principle? Answer Yes or No, then say in one sentence what to change.")


def revision_message(principle: Principle, prompt: str, reply: str, critique: str) -> str:
    """Ask for a rewrite of ``reply`` that follows the principle, given the critique."""
    if not isinstance(principle, Principle):
        raise ValueError(f"principle: expected a Principle, got {type(principle).__name__}")
    return (f"Principle: {principle.text}\n\nMessage: {user_message(prompt)}\n\nReply: {reply.strip()}\n\n"
            f"Critique: {critique.strip()}\n\nRewrite the reply so that it follows the principle. "
            f"Give only the new reply, one or two sentences.")


# ---- reading the judge's answers ----------------------------------------------------------------------

_VERDICT_WORDS = re.compile(r"[a-z]+")


def parse_verdict(text) -> str | None:
    """Read a pairwise verdict: ``"A"``, ``"B"``, or None when the answer names neither or both.

    Accepts "A", "B.", "Reply A", "**B**", "Answer: b", "Reply B is better", "(A)". Markdown and
    punctuation are ignored and case does not matter; the words "reply", "answer", "response",
    "option", "the", "is", "better" may surround the letter. Rejects anything that names both
    letters ("A and B"), neither ("neither", "both", ""), or says more than a verdict ("A cat sat").
    """
    if not isinstance(text, str):
        return None
    words = _VERDICT_WORDS.findall(text.lower())
    letters = [w for w in words if w in ("a", "b")]
    filler = {"reply", "answer", "response", "option", "the", "is", "better", "one", "i", "choose", "pick",
              "final", "verdict", "my", "choice"}
    if len(set(letters)) != 1 or any(w not in filler and w not in ("a", "b") for w in words):
        return None
    return letters[0].upper()


def _token_id(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"options: expected each option to be a single token, got {text!r} -> {len(ids)} tokens")
    return ids[0]


@torch.no_grad()
def next_token_logits(model, tokenizer, prompts: Sequence[str], batch_size: int = 8, progress: bool = False,
                      desc: str = "judging") -> torch.Tensor:
    """(N, V) float32 on the CPU: the model's logits for the token after each prompt, in left-padded batches."""
    from tqdm.auto import tqdm

    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"prompts: expected a non-empty list of non-empty strings, got {prompts!r:.80}")
    check_int("batch_size", batch_size, 1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, disable=not progress):
        enc = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                       position_ids=position_ids(enc["attention_mask"]),
                       **keep_last_logits(model, 1)).logits[:, -1]  # (b, V): left padding puts every last token at -1
        out.append(logits.float().cpu())
    model.train(was_training)
    return torch.cat(out)


def option_margins(logits: torch.Tensor, first_id: int, second_id: int) -> torch.Tensor:
    """(N,): log p(first option) - log p(second option) from next-token logits (N, V).

    The log-softmax's normaliser cancels in the difference, so this equals the difference of the
    raw logits; it is computed through log-softmax to read as what it is.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (N, V), got {tuple(logits.shape)}")
    logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    return logp[:, first_id] - logp[:, second_id]


def symmetric_margin(margin_ab: torch.Tensor, margin_ba: torch.Tensor) -> torch.Tensor:
    """The judge's preference for the first reply with a constant position bias cancelled: ``(m_ab - m_ba) / 2``.

    ``margin_ab``: log p(A) - log p(B) with the first reply shown as A; ``margin_ba``: the same with the
    two replies swapped (the first reply shown as B). A judge that always adds ``c`` to "A" adds it to
    both, and it cancels. Swapping the replies negates the result.
    """
    return (margin_ab - margin_ba) / 2


# ---- the pairwise judge ---------------------------------------------------------------------------------


@dataclass
class JudgeResult:
    """What :func:`judge_pairs` returns for N pairs (first, second); label 0 means "the first reply is better"."""

    margin_ab: np.ndarray
    """(N,) log p(A) - log p(B), the first reply shown as A."""
    margin_ba: np.ndarray
    """(N,) log p(A) - log p(B), the replies swapped (the first reply shown as B)."""
    seconds: float = 0.0
    """Wall time of the call."""

    @property
    def margin(self) -> np.ndarray:
        """(N,) the symmetric margin (:func:`symmetric_margin`): > 0 prefers the first reply."""
        return (self.margin_ab - self.margin_ba) / 2

    @property
    def consistent(self) -> np.ndarray:
        """(N,) bool: both orders pick the same reply (A first, then B after the swap, or the other way round)."""
        return np.sign(self.margin_ab) == -np.sign(self.margin_ba)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int: 0 (first better), 1 (second better) where the two orders agree, -1 where they do not."""
        out = np.where(self.margin_ab > 0, 0, 1)
        return np.where(self.consistent, out, -1)

    @property
    def first_rate(self) -> float:
        """The share of all 2N judgements that answered A (the reply shown first): 0.5 for an unbiased judge."""
        return float(np.concatenate([self.margin_ab > 0, self.margin_ba > 0]).mean())


def judge_pairs(model, tokenizer, principles: Sequence[Principle], prompts: Sequence[str], first: Sequence[str],
                second: Sequence[str], batch_size: int = 8, progress: bool = True) -> JudgeResult:
    """Judge N pairs in both orders from the next-token log-probs of " A" and " B".

    Each pair gives two prompts (:func:`pairwise_prompt` with :data:`ANSWER_PREFIX`): (first as A,
    second as B) and the swap. Never unparseable: a margin is a number.

    Args:
        model, tokenizer: the judge (any causal LM; here the policy's own starting model).
        principles: the constitution. prompts: N user messages (plain or chat-formatted).
        first, second: N replies each.
        batch_size: judge prompts per forward pass.
    """
    import time

    prompts, first, second = list(prompts), list(first), list(second)
    if not prompts or not len(prompts) == len(first) == len(second):
        raise ValueError(f"prompts, first, second: expected equal non-zero lengths, got {len(prompts)}, "
                         f"{len(first)}, {len(second)}")
    started = time.perf_counter()
    texts = [pairwise_prompt(tokenizer, principles, p, a, b, ANSWER_PREFIX) for p, a, b in zip(prompts, first, second)]
    texts += [pairwise_prompt(tokenizer, principles, p, b, a, ANSWER_PREFIX) for p, a, b in zip(prompts, first, second)]
    logits = next_token_logits(model, tokenizer, texts, batch_size, progress)  # (2N, V)
    margins = option_margins(logits, _token_id(tokenizer, " A"), _token_id(tokenizer, " B")).numpy()  # (2N,)
    n = len(prompts)
    return JudgeResult(margins[:n].astype(np.float64), margins[n:].astype(np.float64), time.perf_counter() - started)


def generated_verdicts(model, tokenizer, principles: Sequence[Principle], prompts: Sequence[str],
                       first: Sequence[str], second: Sequence[str], max_new_tokens: int = 6, batch_size: int = 16,
                       progress: bool = True) -> tuple[list[str], list[str | None]]:
    """The judge's free-text answers (greedy, first reply shown as A) and their :func:`parse_verdict` readings.

    Returns ``(texts, verdicts)``: verdicts are "A", "B" or None (unparseable).
    """
    from tqdm.auto import tqdm

    prompts = [pairwise_prompt(tokenizer, principles, p, a, b) for p, a, b in zip(prompts, first, second)]
    texts: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="generating verdicts", disable=not progress):
        texts += generate(model, tokenizer, prompts[start:start + batch_size], max_new_tokens=max_new_tokens)
    return texts, [parse_verdict(t) for t in texts]


def agreement(judge_labels: Sequence, human_labels: Sequence) -> dict[str, float]:
    """How often the judge agrees with the (simulated) human, on the pairs the judge labelled.

    Args:
        judge_labels: N labels, 0 or 1 (or "A"/"B"); None or -1 means no label (unparseable or inconsistent).
        human_labels: N labels 0 or 1 (or "A"/"B").

    Returns:
        ``{"rate", "se", "n", "unlabelled"}``: the agreement rate over the n labelled pairs, its binomial
        standard error sqrt(rate (1 - rate) / n), n, and how many pairs had no judge label
        (rate and se are nan when n = 0).
    """
    def norm(x):
        if x is None or (isinstance(x, (int, np.integer)) and x == -1):
            return None
        if isinstance(x, str) and x.upper() in ("A", "B"):
            return "AB".index(x.upper())
        if isinstance(x, (int, np.integer)) and x in (0, 1):
            return int(x)
        raise ValueError(f"labels: expected 0, 1, 'A', 'B', None or -1, got {x!r}")

    judge_labels, human_labels = list(judge_labels), list(human_labels)
    if len(judge_labels) != len(human_labels):
        raise ValueError(f"human_labels: expected one per judge label ({len(judge_labels)}), got {len(human_labels)}")
    pairs = [(norm(j), norm(h)) for j, h in zip(judge_labels, human_labels)]
    used = [(j, h) for j, h in pairs if j is not None]
    n = len(used)
    if n == 0:
        return {"rate": float("nan"), "se": float("nan"), "n": 0, "unlabelled": len(pairs)}
    rate = sum(j == h for j, h in used) / n
    return {"rate": rate, "se": math.sqrt(rate * (1 - rate) / n), "n": n, "unlabelled": len(pairs) - n}


def ai_preference_pairs(prompts: Sequence[str], first: Sequence[str], second: Sequence[str],
                        result: JudgeResult) -> list[PreferencePair]:
    """The judge's consistent labels as preference pairs (prompt kept as given); inconsistent pairs dropped."""
    if not len(prompts) == len(first) == len(second) == len(result.labels):
        raise ValueError(f"prompts, first, second: expected {len(result.labels)} each (one per judged pair), got "
                         f"{len(prompts)}, {len(first)}, {len(second)}")
    out = []
    for p, a, b, label in zip(prompts, first, second, result.labels):
        if label == 0:
            out.append(PreferencePair(p, a, b))
        elif label == 1:
            out.append(PreferencePair(p, b, a))
    return out


# ---- per-principle critique ---------------------------------------------------------------------------------


def principle_margins(model, tokenizer, principle: Principle, prompts: Sequence[str], replies: Sequence[str],
                      batch_size: int = 8, progress: bool = False) -> np.ndarray:
    """(N,) log p(Yes) - log p(No) as the first answer token to "Does the reply follow the principle?"."""
    texts = [chat_prompt(tokenizer, critique_message(principle, p, r)) for p, r in zip(prompts, replies)]
    logits = next_token_logits(model, tokenizer, texts, batch_size, progress, desc=f"critique: {principle.name}")
    return option_margins(logits, _token_id(tokenizer, "Yes"), _token_id(tokenizer, "No")).numpy().astype(np.float64)


def parse_yes_no(text) -> str | None:
    """"Yes" or "No" when the text starts with one of them (after markdown and punctuation), else None."""
    if not isinstance(text, str):
        return None
    words = _VERDICT_WORDS.findall(text.lower()[:40])
    if words and words[0] in ("yes", "no"):
        return words[0].capitalize()
    return None


# ---- critique and revise ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviseConfig:
    """Hyper-parameters of :func:`critique_and_revise`."""

    critique_tokens: int = 32
    """Tokens generated per critique, >= 1."""
    revision_tokens: int = 32
    """Tokens generated per revision, >= 1."""
    temperature: float = 0.0
    """0: greedy critiques and revisions (reproducible); > 0 samples them."""
    batch_size: int = 16
    """Prompts generated at once, >= 1."""

    def __post_init__(self):
        for name in ("critique_tokens", "revision_tokens", "batch_size"):
            value = getattr(self, name)
            check_int(name, value, 1)
        check_float("temperature", self.temperature, "[0, inf)", note="0 decodes greedily")


REVISE_PRESETS: dict[str, ReviseConfig] = {
    # The test suite with the tiny model.
    "ci": ReviseConfig(critique_tokens=6, revision_tokens=6, batch_size=8),
    # SmolLM2-135M on a laptop CPU: short critiques, revisions as long as the original replies (24 tokens).
    "cpu": ReviseConfig(critique_tokens=24, revision_tokens=28, batch_size=16),
    # SmolLM2-135M on a GPU: longer critiques.
    "gpu": ReviseConfig(critique_tokens=48, revision_tokens=40, batch_size=64),
}


@dataclass
class Revisions:
    """What :func:`critique_and_revise` returns, one entry per reply."""

    principles: list[Principle]
    """The principle each reply was critiqued under."""
    critiques: list[str]
    """The generated critiques."""
    revisions: list[str]
    """The generated rewrites, cleaned (:func:`clean_revision`); "" when nothing usable came back."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of the critique and the revision phases."""


def clean_revision(text: str) -> str:
    """A generated revision as a reply: the text after a leading "Reply:"/"Revised reply:" label, surrounding
    quotes and whitespace removed."""
    text = text.strip()
    text = re.sub(r"^(\*\*)?(new |revised |rewritten )?(reply|response)(\*\*)?\s*:\s*(\*\*)?", "", text, flags=re.I)
    return text.strip().strip('"').strip()


def critique_and_revise(model, tokenizer, prompts: Sequence[str], replies: Sequence[str],
                        principles: Sequence[Principle], config: ReviseConfig = REVISE_PRESETS["cpu"],
                        seed: int = 0, progress: bool = True) -> Revisions:
    """Bai et al. (2022), Section 3.1: critique each reply under one principle, then rewrite it given the critique.

    1. reply i gets principle ``principles[i % len(principles)]`` (every principle used in turn);
    2. the model writes a critique (:func:`critique_message`);
    3. the model writes a revision given the reply and its critique (:func:`revision_message`);
    4. the revision is cleaned (:func:`clean_revision`).

    Args:
        model, tokenizer: the model that critiques and revises (in Constitutional AI, the policy itself).
        prompts: N user messages (plain or chat-formatted). replies: N replies to them.
        principles: the principles to use, in turn. config: a :class:`ReviseConfig`.
        seed: seeds the sampling when ``config.temperature > 0``.
    """
    import time

    from tqdm.auto import tqdm

    if not isinstance(config, ReviseConfig):
        raise ValueError(f"config: expected a ReviseConfig (e.g. REVISE_PRESETS['cpu']), got {config!r:.80}")
    prompts, replies, principles = list(prompts), list(replies), list(principles)
    if not prompts or len(prompts) != len(replies):
        raise ValueError(f"replies: expected one per prompt ({len(prompts)} prompts, at least 1), got {len(replies)}")
    format_principles(principles)  # validates
    chosen = [principles[i % len(principles)] for i in range(len(prompts))]
    seconds = {}

    def run(messages: list[str], tokens: int, desc: str) -> list[str]:
        texts = [chat_prompt(tokenizer, m) for m in messages]
        out: list[str] = []
        for start in tqdm(range(0, len(texts), config.batch_size), desc=desc, disable=not progress):
            out += generate(model, tokenizer, texts[start:start + config.batch_size], max_new_tokens=tokens,
                            temperature=config.temperature, seed=seed + start if config.temperature > 0 else None)
        return out

    t0 = time.perf_counter()
    critiques = run([critique_message(c, p, r) for c, p, r in zip(chosen, prompts, replies)],
                    config.critique_tokens, "critiques")
    seconds["critique"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = run([revision_message(c, p, r, k) for c, p, r, k in zip(chosen, prompts, replies, critiques)],
              config.revision_tokens, "revisions")
    seconds["revise"] = time.perf_counter() - t0
    return Revisions(chosen, [c.strip() for c in critiques], [clean_revision(t) for t in raw], seconds)
