"""A reward model: the LLM's backbone with a scalar head read at the last real token (lesson 10).

Following Ouyang et al. (2022, Section 3.5) and Stiennon et al. (2020): take the language
model, drop its next-token head, and put a linear layer from the last hidden state to one
number. The score of (prompt, response) is that number at the *last real token* of the
joined sequence, the only position that has seen all of it. Which position that is depends
on the padding side, so :func:`~course_lib.llm.tokens.last_token_index` reads it from the
attention mask instead of assuming one: with right padding it is ``mask.sum() - 1``, with left
padding ``T - 1``.

A response is its token ids (:func:`~course_lib.llm.tokens.reply_ids`): a finished reply ends
with EOS, so its score is read at the EOS position, while a reply cut at the token limit ends
on a text token. The two are different inputs, and the model can learn to tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.data.preferences import reply_key
from course_lib.llm.models import forward_keyword
from course_lib.llm.tokens import encode, last_token_index, pad, position_ids, reply_ids
from course_lib.utils.validation import check_int


class RewardModel(nn.Module):
    """r_phi(x, y): a causal LM's transformer body plus a linear head to one scalar.

    Args:
        causal_lm: a Hugging Face ``...ForCausalLM`` (e.g. SmolLM2); its ``.model`` body is
            shared, not copied, and its LM head is not used.
        seed: seeds the head's random start (its own generator: the global random state neither
            decides it nor changes), so the same seed gives the same reward model wherever it is built.

    ``forward(input_ids, attention_mask)`` -> (B,) scores, float32.
    """

    def __init__(self, causal_lm, seed: int = 0):
        super().__init__()
        self.body = causal_lm.model  # the transformer without its next-token head
        hidden = causal_lm.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        with torch.no_grad():  # scores start at about unit scale
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=torch.Generator().manual_seed(seed))
                                   / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)
        self.head.to(next(causal_lm.parameters()).device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: (B, T) -> (B,) scalar rewards."""
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=position_ids(attention_mask)).last_hidden_state  # (B, T, H)
        idx = last_token_index(attention_mask)  # (B,)
        return self.read_out(hidden[torch.arange(hidden.shape[0], device=hidden.device), idx])  # (B,)

    def read_out(self, last: torch.Tensor) -> torch.Tensor:
        """(B, H) hidden states at each text's last real token -> (B,) float32 scores."""
        return self.head(last.to(self.head.weight.dtype)).squeeze(-1).float()


# ---- training ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardConfig:
    """Hyper-parameters of :func:`train_reward_model`."""

    epochs: int = 2
    """Passes over the training pairs; usually 1 to 3 (reward models overfit fast)."""
    batch_size: int = 8
    """Pairs per step; each step runs one forward over 2 x batch_size sequences; usually 8 to 64."""
    learning_rate: float = 1e-4
    """AdamW step size in (0, 1); usually 1e-5 to 1e-4 for full fine-tuning, up to 1e-3 for a few layers."""
    weight_decay: float = 0.0
    """AdamW weight decay >= 0."""
    max_length: int = 128
    """Tokens kept per sequence (prompt + response, cut from the left so the end survives), >= 2."""
    trainable: str = "all"
    """``"all"`` or ``"top:N"`` (the head, the final norm and the top N layers), see :func:`train_top_layers`."""
    max_grad_norm: float = 1.0
    """Clip the gradient to this global L2 norm, > 0."""
    mixed_precision: str = "no"
    """``"no"`` (fp32) or ``"bf16"``: forward and loss under bf16 autocast, weights and AdamW in fp32 (a GPU)."""

    def __post_init__(self):
        from course_lib.llm.finetune import check_finetune_config

        check_finetune_config(self)
        check_int("max_length", self.max_length, 2)


REWARD_PRESETS: dict[str, RewardConfig] = {
    # The test suite (tiny model or a few steps of the real one): one epoch, the top layer and the head.
    "ci": RewardConfig(epochs=1, batch_size=4, learning_rate=1e-3, max_length=64, trainable="top:1"),
    # SmolLM2-135M on a laptop CPU: the top 4 of 30 layers and the head, at most 2 epochs over the shipped
    # training pairs; the course trains with keep_best=True, so the validation pairs choose 1 or 2.
    "cpu": RewardConfig(epochs=2, batch_size=8, learning_rate=3e-4, max_length=96, trainable="top:4"),
    # SmolLM2-135M on a GPU: every parameter, bf16 autocast over fp32 weights.
    "gpu": RewardConfig(epochs=2, batch_size=16, learning_rate=2e-5, max_length=256, mixed_precision="bf16"),
}


def encode_texts(tokenizer, prompts, responses, max_length: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """N (prompt, response) pairs -> one left-padded batch ``(input_ids, attention_mask)``, both (N, T).

    The prompt's tokens, then the response's (:func:`~course_lib.llm.tokens.reply_ids`: a sampled
    :class:`~course_lib.data.preferences.Reply`'s own ids, EOS included when it finished; a plain text
    as a finished reply); each row keeps its last ``max_length`` tokens, so the end of the response,
    where the score is read, survives.
    """
    rows = [(encode(tokenizer, p) + reply_ids(tokenizer, r))[-max_length:] for p, r in zip(prompts, responses)]
    return pad(rows, tokenizer.pad_token_id, "left", device)  # (N, T) each


def encode_pairs(tokenizer, pairs, max_length: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """B pairs -> one left-padded batch of 2B sequences: the B (prompt + chosen) rows, then the B (prompt + rejected).

    See :func:`encode_texts`. Returns ``(input_ids, attention_mask)``, both (2B, T).
    """
    prompts = [pair.prompt for pair in pairs]
    return encode_texts(tokenizer, prompts * 2, [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs],
                        max_length, device)


@torch.no_grad()
def score_pairs(model: RewardModel, tokenizer, pairs, batch_size: int = 16, max_length: int = 128
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen_scores, rejected_scores), each (len(pairs),), with the model in eval mode."""
    model.eval()
    chosen, rejected = [], []
    for i in range(0, len(pairs), batch_size):
        batch = pairs[i:i + batch_size]
        scores = score_texts(model, tokenizer, [p.prompt for p in batch] * 2,
                             [p.chosen for p in batch] + [p.rejected for p in batch], max_length)  # (2B,)
        chosen.append(scores[:len(batch)].cpu())
        rejected.append(scores[len(batch):].cpu())
    return torch.cat(chosen), torch.cat(rejected)


@torch.no_grad()
def score_responses(model: RewardModel, tokenizer, prompts, responses, batch_size: int = 16,
                    max_length: int = 128) -> torch.Tensor:
    """(N,) reward-model scores of N (prompt, response) texts, encoded as in training; eval mode.

    ``lambda p, r: score_responses(rm, tok, p, r).tolist()`` is the reward function of RLHF (lesson 11).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"prompts, responses: expected equal lengths, got {len(prompts)}, {len(responses)}")
    model.eval()
    scores = [score_texts(model, tokenizer, list(prompts[i:i + batch_size]), list(responses[i:i + batch_size]),
                          max_length).cpu() for i in range(0, len(prompts), batch_size)]
    return torch.cat(scores) if scores else torch.zeros(0)


def _blocks(pairs, batch_size: int) -> list[list[int]]:
    """Indices of ``pairs`` in runs of neighbours with the same prompt, each run at most ``batch_size`` long."""
    blocks: list[list[int]] = []
    for i, pair in enumerate(pairs):
        if blocks and pairs[blocks[-1][-1]].prompt == pair.prompt and len(blocks[-1]) < batch_size:
            blocks[-1].append(i)
        else:
            blocks.append([i])
    return blocks


def _shared_prefix_batch(tokenizer, prompts, responses, max_length: int, device):
    """The N texts as U distinct left-padded prompts and N right-padded responses, or None when one would be cut.

    Returns ``(prompt_ids, prompt_mask, owner, response_ids, response_mask)``: (U, P), (U, P), (N,) index
    of each response's prompt, (N, R), (N, R). None when a prompt is empty or a text is longer than
    ``max_length`` tokens (then :func:`encode_texts` cuts rows one by one and the prefix is not shared).
    """
    distinct = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    prompt_rows = [encode(tokenizer, p) for p in distinct]
    response_rows = [reply_ids(tokenizer, r) for r in responses]
    owner = [distinct[p] for p in prompts]
    if any(not prompt_rows[o] or len(prompt_rows[o]) + len(r) > max_length for o, r in zip(owner, response_rows)):
        return None
    prompt_ids, prompt_mask = pad(prompt_rows, tokenizer.pad_token_id, "left", device)  # (U, P) each
    response_ids, response_mask = pad(response_rows, tokenizer.pad_token_id, "right", device)  # (N, R) each
    return prompt_ids, prompt_mask, torch.tensor(owner, device=device), response_ids, response_mask


def score_texts(model: RewardModel, tokenizer, prompts, responses, max_length: int) -> torch.Tensor:
    """(N,) scores of N (prompt, response) texts; each distinct prompt goes through the body once.

    The U distinct prompts are encoded once with the KV cache; the cache is indexed to the N responses,
    which then run on top of it. Equal to ``model(*encode_texts(...))`` (tested, scores and gradients)
    for a fraction of the tokens when responses share prompts (K samples per prompt, or a pair's two
    responses). Falls back to that plain encoding when a text has to be cut to ``max_length``.
    """
    device = next(model.parameters()).device
    batch = _shared_prefix_batch(tokenizer, list(prompts), list(responses), max_length, device)
    if batch is None:
        return model(*encode_texts(tokenizer, prompts, responses, max_length, device))
    prompt_ids, prompt_mask, owner, response_ids, response_mask = batch
    cache_keyword = forward_keyword(type(model.body), "cache", "past_key_values")  # renamed in transformers 5
    out = model.body(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position_ids(prompt_mask),
                     use_cache=True)  # real tokens counted, as in forward
    cache = getattr(out, cache_keyword)  # per layer: keys, values of shape (U, heads, P, d)
    cache.reorder_cache(owner)  # (N, heads, P, d): each response gets its prompt's keys and values
    R = response_ids.shape[1]
    positions = prompt_mask.sum(-1)[owner, None] + torch.arange(R, device=device)  # (N, R)
    attention_mask = torch.cat([prompt_mask[owner], response_mask], dim=1)  # (N, P + R)
    hidden = model.body(input_ids=response_ids, attention_mask=attention_mask, position_ids=positions,
                        use_cache=True, **{cache_keyword: cache}).last_hidden_state  # (N, R, H)
    return model.read_out(hidden[torch.arange(len(owner), device=device), response_mask.sum(-1) - 1])  # (N,)


def _score_distinct(model: RewardModel, tokenizer, pairs, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) scores of B pairs, each (B,), from one pass over their distinct texts."""
    texts: dict[tuple, int] = {}  # (prompt, reply_key) -> row: a cut and a finished reply are different texts
    replies = []
    for pair in pairs:
        for response in (pair.chosen, pair.rejected):
            if texts.setdefault((pair.prompt, reply_key(response)), len(texts)) == len(replies):
                replies.append((pair.prompt, response))
    prompts, responses = zip(*replies)
    scores = score_texts(model, tokenizer, list(prompts), list(responses), max_length)  # (U,)
    chosen = torch.tensor([texts[(p.prompt, reply_key(p.chosen))] for p in pairs], device=scores.device)
    rejected = torch.tensor([texts[(p.prompt, reply_key(p.rejected))] for p in pairs], device=scores.device)
    return scores[chosen], scores[rejected]


def train_reward_model(model: RewardModel, tokenizer, train_pairs, eval_pairs=None,
                       config: RewardConfig = REWARD_PRESETS["cpu"], seed: int = 0, progress: bool = True,
                       live: bool | None = None, keep_best: bool = False):
    """Fit ``model`` to preferences with the Bradley-Terry loss (Ouyang et al. 2022, Eq. 1), in place.

    Each step scores the distinct (prompt, response) texts of its pairs with :func:`score_texts` (each
    distinct prompt once, each distinct response once on its prompt's KV cache) and minimises
    :func:`course_lib.rl.bradley_terry_loss` over the pairs. Pairs that share a prompt and sit next to
    each other in ``train_pairs`` (every pair of one ranked group, as
    :func:`course_lib.llm.feedback.collect_preferences` returns them with ``keep="all"``) stay in one
    batch, so a group of K responses costs one prompt and K responses for its K (K - 1) / 2 pairs
    instead of K (K - 1) full texts (Ouyang et al. 2022, Section 3.5). A batch holds ``batch_size`` pairs or more, to finish a group.
    After each epoch the held-out pairs (if any) are scored: ``rm/eval_accuracy`` is the share the
    model orders like the labels. With ``keep_best=True`` (it needs ``eval_pairs``: pass validation pairs,
    never the test pairs) the model ends with the trained parameters of the epoch whose ``rm/eval_accuracy``
    was highest (the earliest of equals), logged as ``rm/best_epoch`` (1-based): the number of epochs is
    chosen on the validation pairs, with ``config.epochs`` as the most it may take.

    Returns:
        a :class:`MetricLogger` with ``rm/loss``, ``rm/accuracy`` (per step, on the training batch)
        and ``rm/eval_accuracy``, ``rm/eval_loss`` (per epoch).

    Raises:
        FloatingPointError: a non-finite loss or gradient norm, naming the epoch and step.
    """
    from course_lib.llm.finetune import adamw, train_top_layers
    from course_lib.rl import bradley_terry_loss, guarded_step
    from course_lib.utils import set_seed
    from course_lib.utils.device import autocast
    from course_lib.utils.metrics import MetricLogger

    if not isinstance(config, RewardConfig):
        raise ValueError(f"config: expected a RewardConfig (e.g. REWARD_PRESETS['cpu']), got {config!r}")
    train_pairs = list(train_pairs)
    if not train_pairs:
        raise ValueError("train_pairs: expected at least one preference pair, got none")
    if keep_best and not eval_pairs:
        raise ValueError("keep_best: expected eval_pairs (validation pairs) to choose the epoch on, got none")
    set_seed(seed)
    params = train_top_layers(model.body, [model.head], config.trainable)
    optimizer = adamw(params, config.learning_rate, config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    blocks = _blocks(train_pairs, config.batch_size)
    epochs = []
    for _ in range(config.epochs):  # every epoch's batches up front: a fresh shuffle of the blocks each time
        batches, current = [], []
        for b in torch.randperm(len(blocks), generator=generator).tolist():
            current += blocks[b]
            if len(current) >= config.batch_size:
                batches.append(current)
                current = []
        epochs.append(batches + ([current] if current else []))
    logger = MetricLogger(total=sum(len(b) for b in epochs), desc="reward model", live=live, progress=progress,
                          keys_to_plot=["rm/loss", "rm/accuracy", "rm/eval_accuracy"])
    device = next(model.parameters()).device
    step = 0
    best = (-1.0, 0, None)  # (validation accuracy, epoch, trained parameters) of the best epoch so far
    for epoch, batches in enumerate(epochs):
        model.train()
        for indices in batches:
            batch = [train_pairs[i] for i in indices]
            with autocast(device, config.mixed_precision):  # forward and loss; backward and step on fp32 weights
                chosen, rejected = _score_distinct(model, tokenizer, batch, config.max_length)  # (B,) each, fp32
                loss, info = bradley_terry_loss(chosen, rejected)
            guarded_step(optimizer, loss, params, config.max_grad_norm, f"epoch {epoch}, step {step}")
            step += 1
            logger.log(step, {"rm/loss": loss.item(), "rm/accuracy": info["accuracy"]})
        if eval_pairs:
            with autocast(device, config.mixed_precision):  # scored as in training
                chosen, rejected = score_pairs(model, tokenizer, list(eval_pairs), config.batch_size,
                                               config.max_length)
            eval_loss, eval_info = bradley_terry_loss(chosen, rejected)
            logger.log(step, {"rm/eval_loss": eval_loss.item(), "rm/eval_accuracy": eval_info["accuracy"]})
            if keep_best and eval_info["accuracy"] > best[0]:
                best = (eval_info["accuracy"], epoch + 1, [p.detach().clone() for p in params])
    if keep_best:
        with torch.no_grad():
            for p, kept in zip(params, best[2]):
                p.copy_(kept)
        logger.log(step, {"rm/best_epoch": best[1]})
    model.eval()
    logger.close()
    return logger


# ---- saving and loading --------------------------------------------------------------------


def save_reward_model(model: RewardModel, path, trainable: str, key: dict | None = None) -> int:
    """Save what training changed: the parameters with ``requires_grad`` (head, top layers or adapters).

    The frozen rest is the base model, which :func:`load_reward_model` loads again; with
    ``trainable="top:4"`` the file is about a tenth of the model. ``key`` (JSON-like) records what the
    model was built from, for :func:`load_reward_model` to check. Returns the number of saved tensors.
    """
    from pathlib import Path

    from course_lib.llm.finetune import parse_trainable

    parse_trainable(trainable)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    if not trained:
        raise ValueError("model: expected trained parameters (requires_grad=True), found none; save it before "
                         "freezing it")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if k in trained}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"trainable": trainable, "state": state, "key": key}, path)
    return len(state)


class StaleRewardModel(ValueError):
    """A saved reward model built from something else than what the caller expects (see :func:`load_reward_model`)."""


def load_reward_model(path, causal_lm=None, key: dict | None = None) -> RewardModel:
    """A :class:`RewardModel` saved by :func:`save_reward_model`, on the base model, frozen, in eval mode.

    Args:
        path: the file.
        causal_lm: the base LM to build on (default: :func:`~course_lib.llm.models.load_model`'s); it is
            used in place, so pass a copy if the same LM is also a policy.
        key: when given, the file's recorded key must equal it, else :class:`StaleRewardModel` (a
            ``ValueError``) names the first field that differs.
    """
    from pathlib import Path

    from course_lib.llm.finetune import add_lora, parse_trainable
    from course_lib.llm.models import load_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected a reward model saved by save_reward_model, {path} does not exist")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if key is not None and saved.get("key") != key:
        stored = saved.get("key") or {}
        field = next((k for k in key if stored.get(k) != key[k]), "key")
        raise StaleRewardModel(f"path: {path} was built for {field}={stored.get(field)!r}, expected "
                               f"{field}={key.get(field)!r}: it is stale")
    if causal_lm is None:
        causal_lm, _ = load_model()
    model = RewardModel(causal_lm)
    kind, n = parse_trainable(saved["trainable"])
    if kind == "lora":
        add_lora(model.body, n)
    missing, unexpected = model.load_state_dict(saved["state"], strict=False)
    if unexpected:
        raise ValueError(f"path: {path} holds {len(unexpected)} tensors this model does not have, e.g. "
                         f"{unexpected[:3]}; was it saved from another model?")
    model.requires_grad_(False)
    return model.eval()


# ---- a baseline any reward model should beat ---------------------------------------------------------


def bag_of_words_baseline(train_pairs, validation_pairs, test_pairs, grid=(0.01, 0.1, 1.0, 10.0)) -> dict:
    """A bag-of-words logistic regression on the same preference pairs: what a reward model must beat.

    Each reply becomes the counts of its words (scikit-learn's ``CountVectorizer``, fitted on the training
    replies; the prompt is not read), a pair the difference chosen - rejected, and a logistic regression without
    intercept learns ``P(chosen) = sigmoid(w . (f(chosen) - f(rejected)))``: Bradley-Terry with a linear reward
    ``r(y) = w . f(y)``. Every training pair is also used flipped (label 0), so no side is favoured. The L2 strength
    ``C`` is chosen on the validation pairs from ``grid``; the test accuracy is reported for that ``C`` only.

    Returns ``{"C", "validation_accuracy", "test_accuracy", "words", "pair_right"}`` (``words``: the vocabulary's
    size; ``pair_right``: (n,) bool, each test pair ordered like its label, for a paired comparison).
    """
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    for name, pairs in (("train_pairs", train_pairs), ("validation_pairs", validation_pairs),
                        ("test_pairs", test_pairs)):
        if not pairs:
            raise ValueError(f"{name}: expected at least one preference pair, got none")
    vectorizer = CountVectorizer().fit([str(t) for p in train_pairs for t in (p.chosen, p.rejected)])

    def features(pairs):
        chosen = vectorizer.transform([str(p.chosen) for p in pairs])
        rejected = vectorizer.transform([str(p.rejected) for p in pairs])
        return chosen - rejected

    x_train = features(train_pairs)
    from scipy.sparse import vstack

    x_both = vstack([x_train, -x_train])
    y_both = np.r_[np.ones(x_train.shape[0]), np.zeros(x_train.shape[0])]

    def right(model, pairs) -> np.ndarray:
        return np.asarray(features(pairs) @ model.coef_[0] > 0)  # ties (margin 0) count as wrong

    def accuracy(model, pairs) -> float:
        return float(np.mean(right(model, pairs)))

    fits = {c: LogisticRegression(C=c, fit_intercept=False, max_iter=2000).fit(x_both, y_both) for c in grid}
    best = max(grid, key=lambda c: (accuracy(fits[c], validation_pairs), -c))
    return {"C": best, "validation_accuracy": accuracy(fits[best], validation_pairs),
            "test_accuracy": accuracy(fits[best], test_pairs), "words": len(vectorizer.vocabulary_),
            "pair_right": right(fits[best], test_pairs).tolist()}
