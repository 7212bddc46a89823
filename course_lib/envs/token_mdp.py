"""Text generation as an MDP over a tiny vocabulary: the bridge from Part II to the LLM (lesson 8).

An LLM writing a reply is an agent in an MDP: the state is the prompt plus the
tokens so far, the action is the next token, the policy is the model's
next-token distribution, and the reward is a score of the finished text,
given once at the end. :class:`TokenMDPEnv` is that MDP with a vocabulary of a
handful of words, small enough that lesson 4's tabular Q-learning and lesson 6's
REINFORCE run on it unchanged, and the optimal text can be found by brute force.
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

EOS = "<eos>"
DEFAULT_VOCAB: tuple[str, ...] = (EOS, "the", "robot", "found", "lost", "cheese")
"""Token 0 is end-of-sequence; the others are words."""

Scorer = Callable[[tuple[str, ...]], float]


class WordScorer:
    """A transparent score of a finished text: word and word-pair weights, a bonus for EOS, a penalty for repeats.

    score = sum of ``weights[w]`` over the words + sum of ``pairs[(w1, w2)]`` over adjacent words
            + ``eos_bonus`` if the text ended with EOS
            - ``repeat_penalty`` * (number of words that repeat an earlier word)

    The default likes "the robot found cheese", ended properly (score 4.0, the best text of
    :data:`DEFAULT_VOCAB`), and dislikes losing the cheese. Like any fixed scorer it can be
    gamed (lesson 15): the repeat penalty is what stops "cheese cheese cheese".
    """

    def __init__(self, weights: dict[str, float] | None = None, pairs: dict[tuple[str, str], float] | None = None,
                 eos_bonus: float = 0.5, repeat_penalty: float = 1.0):
        self.weights = dict(weights if weights is not None else
                            {"the": 0.1, "robot": 0.3, "found": 0.6, "lost": -1.0, "cheese": 1.0})
        self.pairs = dict(pairs if pairs is not None else
                          {("the", "robot"): 0.5, ("robot", "found"): 0.5, ("found", "cheese"): 0.5})
        for key, w in [*self.weights.items(), *self.pairs.items()]:
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not np.isfinite(w):
                raise ValueError(f"weights, pairs: expected finite float weights, got {key!r}: {w!r}")
        for name, x in (("eos_bonus", eos_bonus), ("repeat_penalty", repeat_penalty)):
            if not isinstance(x, (int, float)) or isinstance(x, bool) or not np.isfinite(x):
                raise ValueError(f"{name}: expected a finite float, got {x!r}")
        self.eos_bonus, self.repeat_penalty = float(eos_bonus), float(repeat_penalty)

    def __call__(self, words: tuple[str, ...]) -> float:
        ended = len(words) > 0 and words[-1] == EOS
        body = words[:-1] if ended else words
        repeats = len(body) - len(set(body))
        return float(sum(self.weights.get(w, 0.0) for w in body)
                     + sum(self.pairs.get(pair, 0.0) for pair in zip(body, body[1:]))
                     + self.eos_bonus * ended - self.repeat_penalty * repeats)

    def __repr__(self) -> str:
        return (f"WordScorer(weights={self.weights}, pairs={self.pairs}, eos_bonus={self.eos_bonus}, "
                f"repeat_penalty={self.repeat_penalty})")


class TokenMDPEnv(gym.Env):
    """Writing a text one token at a time; one score at the end.

    ## Description
    An episode writes one text. Each step appends the chosen token to the
    prefix. The text is finished when the agent chooses EOS (token 0) or when
    ``max_tokens`` words have been written; then the scorer reads it. The
    state is the whole prefix, exactly as for an LLM, so the number of states
    grows as W^L (W words besides EOS): 1 + 5 + 25 + 125 + 625 + 3125 = 3906
    prefixes for the default vocabulary and ``max_tokens=5``, a table lesson
    4's Q-learning can hold.

    ## Action Space
    ``Discrete(V)``: the index of the next token in ``vocab`` (0 is EOS).

    ## Observation Space
    ``observation="index"``: ``Discrete(n_prefixes)``, the prefix's number in
    the order of :meth:`prefixes` (shortest first), for tabular learners.
    ``observation="onehot"``: ``Box(0, 1, (max_tokens * (V - 1),))``, one block
    per position holding the one-hot word there (zeros after the end), for
    neural policies (REINFORCE, PPO).

    ## Rewards
    0 after every token except the last; ``scorer(words)`` when the text is
    finished, where ``words`` ends with ``"<eos>"`` if the agent chose EOS.
    Sparse and delayed: the credit-assignment problem of RLHF in miniature.

    ## Episode End
    Terminated when EOS is chosen or ``max_tokens`` words are written (the
    text is complete: nothing follows it, so no bootstrapping). Never truncated.

    ## Arguments
    ``vocab``: tuple of distinct words with ``"<eos>"`` first (default
    :data:`DEFAULT_VOCAB`). ``max_tokens``: words before the text is cut, 1 to
    8 (default 5). ``scorer``: a callable from the tuple of words to a float (default
    :class:`WordScorer`). ``observation``: ``"index"`` or ``"onehot"``.

    ## References
    Ouyang et al. (2022) and Ziegler et al. (2019) cast LM fine-tuning as this MDP;
    Sutton & Barto (2018), Section 3.1, for the MDP itself.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, vocab: Sequence[str] = DEFAULT_VOCAB, max_tokens: int = 5, scorer: Scorer | None = None,
                 observation: str = "index", render_mode: str | None = None):
        vocab = tuple(vocab)
        if len(vocab) < 2 or vocab[0] != EOS or len(set(vocab)) != len(vocab) \
                or not all(isinstance(w, str) and w for w in vocab):
            raise ValueError(f"vocab: expected distinct non-empty words with {EOS!r} first and at least one more, "
                             f"got {vocab!r}")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 8:
            raise ValueError(f"max_tokens: expected an int in [1, 8], got {max_tokens!r}")
        if scorer is not None and not callable(scorer):
            raise ValueError(f"scorer: expected a callable from a tuple of words to a float, got {scorer!r}")
        if observation not in ("index", "onehot"):
            raise ValueError(f"observation: expected 'index' or 'onehot', got {observation!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: expected one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.vocab, self.max_tokens, self.observation = vocab, max_tokens, observation
        self.scorer: Scorer = scorer if scorer is not None else WordScorer()
        self.render_mode = render_mode
        self.n_words = len(vocab) - 1  # W: the tokens that continue a text
        # prefixes of length k are numbered after all shorter ones: offset[k] = sum_{j<k} W^j
        self._offsets = np.cumsum([0] + [self.n_words ** k for k in range(max_tokens + 1)])
        self.n_prefixes = int(self._offsets[max_tokens + 1])
        self.action_space = spaces.Discrete(len(vocab))
        if observation == "index":
            self.observation_space = spaces.Discrete(self.n_prefixes)
        else:
            self.observation_space = spaces.Box(0.0, 1.0, (max_tokens * self.n_words,), dtype=np.float32)
        self.tokens: list[int] = []

    # -- states ------------------------------------------------------------------------
    def prefix_index(self, tokens: Sequence[int]) -> int:
        """The number of a prefix of word tokens (1..V-1 each): offset of its length + its base-W digits."""
        k = len(tokens)
        digits = 0
        for t in tokens:
            digits = digits * self.n_words + (int(t) - 1)
        return int(self._offsets[k]) + digits

    def prefixes(self) -> list[tuple[int, ...]]:
        """Every prefix, in the order of their numbers (the empty prefix first)."""
        words = range(1, len(self.vocab))
        return [p for k in range(self.max_tokens + 1) for p in itertools.product(words, repeat=k)]

    def _obs(self):
        if self.observation == "index":
            return self.prefix_index(self.tokens)
        x = np.zeros((self.max_tokens, self.n_words), dtype=np.float32)  # (L, W)
        for pos, t in enumerate(self.tokens):
            x[pos, t - 1] = 1.0
        return x.reshape(-1)  # (L * W,)

    def text(self, tokens: Sequence[int] | None = None) -> str:
        """The words of ``tokens`` (default: the current prefix) joined by spaces."""
        return " ".join(self.vocab[t] for t in (self.tokens if tokens is None else tokens))

    # -- the MDP -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.tokens = []
        return self._obs(), {"text": ""}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected a token index in [0, {len(self.vocab) - 1}], got {action!r}")
        action = int(action)
        if action == 0:  # EOS: the text is finished; the observation stays the finished prefix
            words = tuple(self.vocab[t] for t in self.tokens) + (EOS,)
            return self._obs(), float(self.scorer(words)), True, False, {"text": self.text(), "eos": True}
        self.tokens.append(action)
        if len(self.tokens) == self.max_tokens:  # cut at the length limit: finished, scored without EOS
            words = tuple(self.vocab[t] for t in self.tokens)
            return self._obs(), float(self.scorer(words)), True, False, {"text": self.text(), "eos": False}
        return self._obs(), 0.0, False, False, {"text": self.text()}

    def best_text(self) -> tuple[tuple[str, ...], float]:
        """Brute force over every finished text: the highest-scoring one (first in prefix order on ties) and its score.

        The reference that the learners in lesson 8 are compared with; V^L texts, so small vocabularies only.
        """
        best, best_score = None, -np.inf
        for p in self.prefixes():
            words = tuple(self.vocab[t] for t in p)
            candidates = [words] if len(p) == self.max_tokens else [words + (EOS,)]
            for w in candidates:
                score = float(self.scorer(w))
                if score > best_score:
                    best, best_score = w, score
        return best, best_score

    def render(self):
        if self.render_mode == "ansi":
            return (self.text() or "(empty)") + "\n"
        return None
