"""Checks for lesson 8's exercises: a sequence's log-probability, the entropy at a temperature, per-token rewards,
a graded concept check on credit assignment (``credit_assignment``) and a prediction made before an experiment
(``entropy_prediction``).

The references are thin wrappers around the library's functions (the ones the LLM code of
Part III calls): :func:`course_lib.rl.token_logprobs` and :func:`course_lib.rl.masked_sum` for
the sequence log-probability, :func:`course_lib.rl.entropy_from_logits` for the entropy, and
:func:`course_lib.llm.rollout.token_rewards` for the rewards of RLHF.

Shapes: B sequences, T tokens (prompt + completion), R response tokens, V vocabulary.
"""

from __future__ import annotations

import functools

import torch

from course_lib.checks.core import Case, Exercise, check_functions, compare_answers
from course_lib.harness.tensors import cloned, generator
from course_lib.llm.rollout import token_rewards
from course_lib.rl import entropy_from_logits, masked_sum, token_logprobs

# ---- references ----------------------------------------------------------------------------


def sequence_logprob(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reference: log pi(y | x) = sum over the masked positions t >= 1 of log softmax(logits[:, t - 1])[tokens[:, t]].

    Args:
        logits: (B, T, V) the model's output on ``tokens`` (one forward pass).
        tokens: (B, T) int64, prompt and completion. mask: (B, T) bool, True on the tokens to score.

    Returns:
        (B,) float32.
    """
    logp = token_logprobs(logits[:, :-1, :], tokens[:, 1:])  # (B, T - 1): logits at t predict token t + 1
    return masked_sum(logp, mask[:, 1:], dim=-1)  # (B,): the mask shifted like the targets


def temperature_entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Reference: H(softmax(logits / temperature)) in nats, over the last axis: (..., V) -> (...)."""
    return entropy_from_logits(logits / temperature)


def per_token_rewards(score: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                      beta: float) -> torch.Tensor:
    """Reference: the rewards of :func:`course_lib.llm.rollout.token_rewards` (Ziegler et al. 2019, Eq. 2):
    -beta * (logp - ref_logp) on every response token, plus ``score`` on the last one; 0 on padding.

    Args:
        score: (B,). logp, ref_logp: (B, R). mask: (B, R) bool, True up to and including each row's last token.

    Returns:
        (B, R).
    """
    rewards, _ = token_rewards(score, logp, ref_logp, mask, beta)
    return rewards + 0.0  # -beta * 0 is -0.0 on padding; + 0.0 makes it 0.0 (the same number, printed plainly)


# ---- sequence_logprob ------------------------------------------------------------------------


def _sequence(seed: int, lengths: list[int], prompt_lengths: list[int], V: int = 7, scale: float = 2.0) -> tuple:
    """``(logits, tokens, mask)`` for B left-padded sequences, as ``encode_completions`` lays them out.

    Row b has ``lengths[b]`` real tokens, the first ``prompt_lengths[b]`` of them the prompt; T = max(lengths).
    Padding (token 0, mask False) comes first; its logits are random like the others (a model outputs
    something there too), so a sum that forgets the mask is wrong.
    """
    g = generator(seed)
    B, T = len(lengths), max(lengths)
    logits = torch.randn((B, T, V), generator=g) * scale  # (B, T, V)
    tokens = torch.randint(1, V, (B, T), generator=g)  # (B, T); token 0 is the padding id
    mask = torch.zeros((B, T), dtype=torch.bool)
    for b, (n, p) in enumerate(zip(lengths, prompt_lengths)):
        tokens[b, : T - n] = 0
        mask[b, T - n + p:] = True  # the completion: the last n - p tokens
    return logits, tokens, mask


_SEQ_RULE = ("the logits at a position are the model's distribution of the NEXT token. Score every token but the "
             "first with the log-probabilities of the position before it, keep the scores whose token is in the "
             "mask (the mask moves with the targets, not with the logits) and add them up per row.")


def sequence_logprob_cases() -> list[Case]:
    """Seeded cases for ``sequence_logprob``; the first failure names the mistake."""
    return [
        Case(_sequence(0, [6], [1]), {}, "one sequence, every token after the first one scored",
             "log pi(y | x) = sum_t log pi(y_t | y_<t). The logits at position t predict token t + 1: the last "
             "position predicts nothing we have and token 0 is predicted by nothing, so there are T - 1 scores "
             "per row, masked with mask[:, 1:] and summed (not averaged) over t. Use log_softmax, not the raw "
             "logits: a log-probability is normalised over the V tokens."),
        Case(_sequence(1, [7], [4]), {}, "a prompt of 4 tokens, then a completion of 3: only the completion counts",
             "the mask is True only on the completion's tokens; the prompt's log-probs must not enter the sum. "
             "The mask belongs to the tokens being scored, so it is shifted exactly as they are."),
        Case(_sequence(2, [8, 5, 6], [3, 2, 4]), {}, "3 left-padded rows of different lengths",
             "each row is summed on its own (sum over dim=-1, not over the batch); padding and prompt positions "
             "have mask False and add nothing. " + _SEQ_RULE),
        Case(_sequence(3, [9, 9], [2, 5], V=11, scale=60.0), {},
             "a very confident model: some chosen tokens have probability below 1e-40",
             "taking the log of a softmax underflows to log(0) = -inf for very unlikely tokens; "
             "torch.log_softmax computes the same number without forming the tiny probability."),
        Case(_sequence(4, [5, 12, 3, 8], [1, 6, 1, 7], V=32), {}, "4 rows, V = 32, completions of 1 to 6 tokens",
             _SEQ_RULE),
    ]


def sequence_logprob_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and prompt lengths than the notebook's."""
    return [
        Case(_sequence(100, [10, 4], [9, 1], V=5), {}, "a completion of a single token", _SEQ_RULE),
        Case(_sequence(101, [16, 16, 16], [3, 8, 12], V=50, scale=4.0), {}, "3 rows without padding, V = 50",
             _SEQ_RULE),
        Case(_sequence(102, [7, 2], [1, 1], V=9, scale=80.0), {}, "confident logits and a row of 2 tokens",
             "log_softmax (no log of a softmax), and the shifted mask. " + _SEQ_RULE),
    ]


# ---- temperature_entropy ---------------------------------------------------------------------


def _logits(seed: int, shape: tuple[int, ...], scale: float = 2.0, temperature: float = 1.0) -> tuple:
    g = generator(seed)
    return torch.randn(shape, generator=g) * scale, temperature


_ENTROPY_RULE = ("H = -sum_a p(a) log p(a) over the vocabulary (the last axis), in nats (natural log), for the "
                 "distribution softmax(logits / temperature); get log p stably first, then p from it.")


def temperature_entropy_cases() -> list[Case]:
    """Seeded cases for ``temperature_entropy``."""
    return [
        Case((torch.zeros(8), 1.0), {}, "equal logits: the uniform distribution over V = 8, H = ln 8 = 2.079",
             "a uniform distribution over V tokens has entropy ln V (natural log: nats, not bits). Check the "
             "minus sign: H = -sum p log p is >= 0."),
        Case(_logits(10, (10,)), {}, "one distribution (V = 10) at temperature 1", _ENTROPY_RULE),
        Case(_logits(11, (10,), temperature=0.5), {}, "temperature 0.5 sharpens: lower entropy",
             "divide the logits by the temperature before the softmax: softmax(logits / temperature). Below 1 "
             "that spreads the logits apart (sharper, lower entropy); multiplying would do the opposite."),
        Case(_logits(12, (10,), temperature=2.0), {}, "temperature 2 flattens: higher entropy",
             "softmax(logits / temperature) with temperature 2 halves the gaps between logits: the entropy rises "
             "towards ln V."),
        Case(_logits(13, (2, 3, 6), temperature=0.8), {}, "a (B, T, V) batch: one entropy per position",
             "sum over the vocabulary only (dim=-1): the result has shape logits.shape[:-1], here (2, 3)."),
        Case(_logits(14, (4, 16), scale=30.0, temperature=0.3), {},
             "very sharp distributions (large logits, low temperature): many probabilities are exactly 0",
             "p * log(p) with p = 0 gives 0 * (-inf) = nan. Compute log p with a log-softmax (finite everywhere) "
             "and p by exponentiating it: then p = 0 only multiplies a finite number."),
    ]


def temperature_entropy_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and temperatures than the notebook's."""
    return [
        Case(_logits(110, (3, 50), temperature=1.5), {}, "3 rows of V = 50 at temperature 1.5", _ENTROPY_RULE),
        Case(_logits(111, (5,), scale=0.5, temperature=0.1), {}, "small logits at temperature 0.1", _ENTROPY_RULE),
        Case(_logits(112, (2, 2, 2, 9), scale=50.0, temperature=0.5), {}, "a 4-d batch of sharp distributions",
             "large logits at a low temperature: keep everything in log space until the last product. "
             + _ENTROPY_RULE),
    ]


# ---- per_token_rewards -----------------------------------------------------------------------


def _rollout(seed: int, lengths: list[int], R: int | None = None, beta: float = 0.1, zero_score: bool = False,
             garbage: float = 0.0) -> tuple:
    """``(score, logp, ref_logp, mask, beta)`` for B responses of ``lengths`` real tokens, right-padded to R.

    Padding positions hold log-probs like any other (the forward pass computes them) plus ``garbage``.
    """
    g = generator(seed)
    B, R = len(lengths), R or max(lengths)
    logp = torch.log(0.05 + 0.9 * torch.rand((B, R), generator=g))  # (B, R) log pi at sampling time
    ref_logp = logp + 0.5 * torch.randn((B, R), generator=g)  # (B, R) the reference disagrees a little
    score = torch.round(torch.randn((B,), generator=g) * 2.0, decimals=2)  # (B,)
    if zero_score:
        score = torch.zeros(B)
    mask = torch.arange(R)[None, :] < torch.tensor(lengths)[:, None]  # (B, R): True up to the last real token
    logp = torch.where(mask, logp, logp + garbage)
    return score, logp, ref_logp, mask, beta


_REWARD_RULE = ("r_t = minus beta times the log-ratio (policy minus reference) on every response token (mask True), "
                "0 on padding; then score[b] is added at the row's last True position of the mask.")


def per_token_rewards_cases() -> list[Case]:
    """Seeded cases for ``per_token_rewards``; the first failure names the mistake."""
    return [
        Case(_rollout(20, [5, 5], beta=0.0), {}, "beta = 0, no padding: only the score, on the last token",
             "the reward model scores the finished response once: score[b] goes on the last response token "
             "alone, every other token gets 0 from it (not the score on every token, not on the first)."),
        Case(_rollout(21, [6], beta=0.1, zero_score=True), {}, "score 0: only the per-token KL penalty",
             "the penalty is beta times (logp - ref_logp), subtracted: the policy's log-prob minus the "
             "reference's (k1). The reward is negative where the policy likes the token more than the reference."),
        Case(_rollout(22, [4, 4, 4], beta=0.05), {}, "score and penalty together, no padding", _REWARD_RULE),
        Case(_rollout(23, [5, 2, 3], beta=0.0), {}, "rows of different lengths (padding after EOS), beta = 0",
             "the last response token is the last position where the mask is True, not the last column: a "
             "response that stopped early gets its score at its EOS. Padding gets nothing."),
        Case(_rollout(24, [5, 2, 3], beta=0.2, zero_score=True, garbage=3.0), {},
             "padding after EOS holds meaningless log-probs; score 0",
             "keep the penalty only where the mask is True: padding positions are not tokens of the response "
             "and get reward 0."),
        Case(_rollout(25, [1, 6, 4], R=7, beta=0.1, garbage=1.0), {}, "a one-token response and padded rows",
             _REWARD_RULE),
    ]


def per_token_rewards_hidden_cases() -> list[Case]:
    """Grader-only cases: other seeds, shapes and coefficients than the notebook's."""
    return [
        Case(_rollout(120, [8, 3, 8, 1], beta=0.3, garbage=2.0), {}, "4 rows with padding, beta 0.3", _REWARD_RULE),
        Case(_rollout(121, [2], R=10, beta=0.0), {}, "a 2-token response padded to 10, beta 0",
             "score on the last True position of the mask. " + _REWARD_RULE),
        Case(_rollout(122, [12, 12], beta=1.0), {}, "full rows, beta 1", _REWARD_RULE),
    ]


EXERCISES = {
    "sequence_logprob": Exercise("sequence_logprob", sequence_logprob, sequence_logprob_cases,
                                 sequence_logprob_hidden_cases, adapt=cloned, rtol=1e-4, atol=1e-4,
                                 twins=("course_lib.rl.logprobs.token_logprobs",)),
    "temperature_entropy": Exercise("temperature_entropy", temperature_entropy, temperature_entropy_cases,
                                    temperature_entropy_hidden_cases, adapt=cloned, rtol=1e-4, atol=1e-5,
                                    twins=("course_lib.rl.losses.entropy_from_logits",)),
    "per_token_rewards": Exercise("per_token_rewards", per_token_rewards, per_token_rewards_cases,
                                  per_token_rewards_hidden_cases, adapt=cloned, rtol=1e-5, atol=1e-6,
                                  twins=("course_lib.llm.rollout.token_rewards",)),
}


# ---- tier-2 hints ----------------------------------------------------------------------------

HINTS = {
    "sequence_logprob": (
        "Three steps, each with a trap. (1) Normalise: the log-probability of a token is the raw logit minus the "
        "log of the sum of exp over the whole vocabulary; torch has one function for that on an axis, stable for "
        "huge logits. (2) The shift: the logits at position i are about token i + 1, so drop the last position of "
        "the logits and the first of the tokens; then pick, at every position, the entry of the chosen token along "
        "the vocabulary axis (one index per position, so the index needs a trailing axis of size 1). (3) The mask "
        "belongs to the scored tokens: shift it like them, keep only those scores (a selection, not a product with "
        "padding) and add them up per row. Worked example: one row, tokens [0, 1, 2], mask [F, T, T]; the chosen "
        "probabilities are 0.25 (token 1 after position 0) and 0.8 (token 2 after position 1): the answer is "
        "log 0.25 + log 0.8 = log 0.2 = -1.609. With mask [F, F, T] it is log 0.8 = -0.223."),
    "temperature_entropy": (
        "Divide the logits by the temperature first; everything after that is the entropy of an ordinary "
        "softmax over the last axis. Do not build p and then take its log: for sharp distributions p underflows "
        "to exactly 0 and 0 * log 0 is nan. Get log p from the log-softmax, then p as its exponential; each "
        "term p * log p is then finite (0 where p is 0). Sum over the vocabulary only and flip the sign. "
        "Worked example: logits [0, ln 3] at temperature 1 give p = (1/4, 3/4) and H = -(0.25 ln 0.25 + "
        "0.75 ln 0.75) = 0.562 nats; eight equal logits give ln 8 = 2.079 at any temperature."),
    "per_token_rewards": (
        "Two parts. (1) The penalty: the log-ratio of policy to reference at every position, times -beta, kept "
        "only where the mask is True (padding gets 0, whatever its log-probs hold). (2) The score: one entry per "
        "row, at the row's LAST True position, which is not the last column when the row stopped early. The mask "
        "is True on a prefix of each row, so counting its True entries tells you where that prefix ends "
        "(positions count from 0). Add the score there with one advanced-indexing assignment (a row index and a "
        "column index per row). Worked example: beta = 1, mask [T, T, F], logp = log[0.5, 0.9, .], ref_logp = "
        "log[0.25, 0.3, .], score 2: rewards = [-ln 2, -ln 3 + 2, 0] = [-0.693, 0.901, 0]."),
}


# ---- graded concept checks ---------------------------------------------------------------------

CREDIT_SETTINGS = ("final score only", "+ KL shaping", "+ value, lambda = 0", "+ value, lambda = 0.95")


def credit_assignment() -> dict:
    """The right credit each setting gives token t of a 500-token answer scored once at the end (gamma = 1)."""
    return {"final score only": "A", "+ KL shaping": "B", "+ value, lambda = 0": "C", "+ value, lambda = 0.95": "D"}


CREDIT_FEEDBACK = {
    "final score only": {
        "b": "with beta = 0 there is no KL penalty on any token: nothing but the final score reaches the advantage.",
        "c": "there is no value function here (V = 0), so there are no TD errors to tell the tokens apart.",
        "d": "with V = 0 and lambda = 1 the decaying sum has nothing to decay: no TD errors but the final score's.",
        "e": "with gamma = 1 and lambda = 1 the return of token t is the sum of ALL rewards from t to the end, and "
             "the final score is one of them for every t, not only for the last token.",
    },
    "+ KL shaping": {
        "a": "the KL penalty is a reward on every token: tokens that have different penalties still ahead of them "
             "get different returns.",
        "c": "V = 0 here: a TD error needs a value function; with lambda = 1 the advantage is the whole return.",
        "d": "with lambda = 1 nothing decays: every later reward counts in full.",
        "e": "the final score still reaches every token (gamma = 1); the KL terms add to it, they do not replace it.",
    },
    "+ value, lambda = 0": {
        "a": "lambda = 0 keeps only the one-step TD error: the final score reaches the early tokens only through "
             "the value function, not directly.",
        "b": "that is the return with V = 0 and lambda = 1; here the value function is subtracted and lambda is 0.",
        "d": "with lambda = 0 every later TD error has weight 0^l = 0.",
        "e": "the last token gets its own TD error, but so does every other token.",
    },
    "+ value, lambda = 0.95": {
        "a": "a value function and lambda < 1 are exactly what tells the tokens apart.",
        "b": "that is lambda = 1 without a value function; here a value function is subtracted.",
        "c": "lambda = 0.95 keeps the later TD errors too, each weighed less the farther it is.",
        "e": "GAE gives every token an advantage, built from the TD errors of the tokens after it.",
    },
}


def _credit_case() -> list[Case]:
    return [Case((), {}, "your answers", "write down r_t for every token in each setting, then A_t = sum over l of "
                 "lambda^l delta_{t+l} with delta_t = r_t + V(s_{t+1}) - V(s_t) (gamma = 1, V = 0 where there is "
                 "no value function).")]


def entropy_prediction() -> str:
    """The letter of the prediction that the run shows: the entropy rises with the temperature at every position."""
    return "B"


ENTROPY_FEEDBACK = {
    "a": "the entropy is not proportional to tau: it is at most ln V whatever the temperature, and a position with "
         "equal logits has the same entropy at every tau. Look at how the gaps between logits change.",
    "c": "dividing all logits by a larger tau shrinks every gap between them by the same factor; think about "
         "whether that can ever make a distribution more peaked.",
    "d": "the sampled distribution is softmax(z / tau), and its entropy is what you computed in exercise 2: the "
         "checks used several temperatures and got different numbers.",
}


def _prediction_case() -> list[Case]:
    return [Case((), {}, "your prediction", "think of what dividing the logits by tau does to the gaps between them, "
                 "and what the entropy of a uniform distribution over V tokens is.")]


EXERCISES["credit_assignment"] = Exercise(
    "credit_assignment", credit_assignment, _credit_case, list, kind="answer",
    comparer=functools.partial(compare_answers, feedback=CREDIT_FEEDBACK),
    explanation="with gamma = 1 a token's return is the sum of every reward from it to the end, so the final score "
                "alone reaches all 500 tokens equally (A), the good first 299 as much as the repeating rest, and KL "
                "shaping (B) adds each token the penalties still ahead of it, which differ by position but say "
                "nothing about where the answer went wrong. Only a value function can point at token 300: its TD "
                "error (C, lambda = 0) is how much that token changed the predicted score, and GAE with lambda = 0.95 "
                "(D) adds the later TD errors with decaying weights, leaning less on the value's errors at the "
                "price of some variance. "
                "The idea to keep: a score given once at the end tells every token the same thing; telling them "
                "apart is the job of a learned value.")
EXERCISES["entropy_prediction"] = Exercise(
    "entropy_prediction", entropy_prediction, _prediction_case, list, kind="answer",
    comparer=functools.partial(compare_answers, feedback=ENTROPY_FEEDBACK),
    explanation="dividing the logits by tau scales every gap between them by 1/tau, so a larger tau can only flatten "
                "a distribution: at every position the entropy rises with tau, towards ln V, the entropy of the "
                "uniform distribution over V tokens, and never above it, while the most likely token stays the "
                "same. It is not proportional to tau: in the run the ratio H(tau = 2) / H(tau = 1) varies a lot "
                "between positions, largest where the model was sure at tau = 1, because a long tail of nearly "
                "impossible tokens gains mass. Temperature is exploration: it sets how spread out the choices are "
                "at every step, not which one is preferred.")


# ---- spot the bug: where the score lands -------------------------------------------------------------------------

REWARD_BUG_CHOICES = {
    "A": "The KL penalty has the wrong sign: it should be beta * (logp - ref_logp), a bonus for moving away.",
    "B": "The score is added at the last column of the batch; for a response that stopped early that column is "
         "padding, after its EOS.",
    "C": "The penalty should be averaged over the response's tokens instead of given on each token.",
    "D": "The score should be spread evenly over the response's tokens instead of given on one.",
}
"""The choices of exercise 8's spot-the-bug question; one names the real bug."""

REWARD_BUG_FEEDBACK = {
    "A": "a reward of -beta * (log pi - log pi_ref) penalises the tokens the policy likes more than the reference "
         "does, which is what keeps it close; flipping the sign would reward drifting away. Look at the demo's "
         "second row: where did its score go?",
    "C": "a penalty per token is how RLHF shapes rewards (Ziegler et al. 2019): each token pays for its own drift. "
         "Averaging would change the scale, not fix what the demo shows; compare each row's score with its mask.",
    "D": "giving the score once, at the end, is the sparse reward of the lesson; spreading it would be a different "
         "design, not a fix. Compare each row's nonzero entries with its mask.",
}


def reward_bug() -> str:
    """The letter of the statement that names the bug of ``buggy_per_token_rewards`` (exercise 8)."""
    return "B"


def _reward_bug_case() -> list[Case]:
    return [Case((), {}, "your answer", "run the buggy function on the demo batch and look at the second row: which "
                 "of its entries are real tokens, and where did its score land?")]


EXERCISES["reward_bug"] = Exercise(
    "reward_bug", reward_bug, _reward_bug_case, list, kind="answer",
    comparer=functools.partial(compare_answers, feedback=REWARD_BUG_FEEDBACK),
    explanation="a response that stopped early has padding after its EOS, and no token was chosen there: a score "
                "placed on a padding column is never credited to the response (the masked losses skip it), so the "
                "short responses, often the finished ones, learn nothing from their score. It is easy to miss "
                "because every shape is right and long responses, which fill the last column, are scored "
                "correctly. The score belongs on each row's last real token, its EOS when it finished.")


__getattr__ = check_functions(EXERCISES)
