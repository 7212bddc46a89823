"""Token bookkeeping and the episode as token ids: padding, positions, the sampler, EOS kept end to end."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from course_lib.data.preferences import PreferencePair, Reply, load_pairs, pair_record, save_pairs
from course_lib.llm.generation import generate, sample, shared_prompt_logprobs
from course_lib.llm.models import tiny_model
from course_lib.llm.rollout import response_outputs, sample_responses
from course_lib.llm.tokens import as_reply, last_token_index, pad, position_ids, reply_ids
from course_lib.rl import masked_sum

PROMPTS = ["The robot", "Once upon a time, in a maze far away,", "Cheese"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0)


def biased(bias: dict[int, float]):
    """The tiny model with an untied LM head whose bias favours some tokens (its logits are otherwise almost flat)."""
    model, tok = tiny_model(seed=0)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        for token, value in bias.items():
            head.bias[token] = value
    model.lm_head = head
    return model, tok


@pytest.fixture(scope="module")
def stopping(tiny):
    """EOS about 1 in 5 tokens (e^9.4 / (e^9.4 + 49,151) is about 0.2), so replies end both ways."""
    return biased({tiny[1].eos_token_id: 9.4})


def naive_logps(model, prompt_ids: list[int], reply: list[int]) -> torch.Tensor:
    """Independent reference: prompt + reply alone (no padding, no cache), log pi of each reply token."""
    ids = torch.tensor([prompt_ids + reply])  # (1, T)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)  # (T, V)
    P = len(prompt_ids)
    return logp[torch.arange(P - 1, P - 1 + len(reply)), torch.tensor(reply)]  # (R,)


# ---- padding and positions -------------------------------------------------------------------------


def test_position_ids_count_real_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0], [0, 1, 0, 1, 1]])
    expected = [[max(0, int(row[:t + 1].sum()) - 1) for t in range(5)] for row in mask]
    assert position_ids(mask).tolist() == expected == [[0, 0, 0, 1, 2], [0, 1, 2, 2, 2], [0, 0, 0, 1, 2]]


def test_pad_left_and_right():
    ids, mask = pad([[5, 6], [7], []], pad_id=0, side="left")
    assert ids.tolist() == [[5, 6], [0, 7], [0, 0]] and mask.tolist() == [[1, 1], [0, 1], [0, 0]]
    ids, mask = pad([[5, 6], [7]], pad_id=0, side="right")
    assert ids.tolist() == [[5, 6], [7, 0]] and mask.tolist() == [[1, 1], [1, 0]]
    assert last_token_index(mask).tolist() == [1, 0]
    with pytest.raises(ValueError, match="side: expected 'left' or 'right', got 'middle'"):
        pad([[1]], 0, "middle")


# ---- the sampler -------------------------------------------------------------------------------------


def test_sampled_logprobs_equal_a_naive_rescore_and_the_eos_ends_the_episode(stopping):
    model, tok = stopping
    torch.manual_seed(0)
    out = sample(model, tok, PROMPTS * 2, max_new_tokens=4, temperature=1.0)
    assert out.tokens.shape == out.logp.shape == out.response_mask.shape
    assert out.finished.any() and not out.finished.all()
    check_against_naive(model, tok, PROMPTS * 2, out)
    check_against_naive(model, tok, [PROMPTS[1]] * 3, sample(model, tok, [PROMPTS[1]] * 3, 6))  # no padding at all


def check_against_naive(model, tok, prompts, out):
    eos = tok.eos_token_id
    for b, prompt in enumerate(prompts):
        reply = out.tokens[b][out.response_mask[b]].tolist()
        assert out.finished[b] == (reply[-1] == eos) and eos not in reply[:-1]
        expected = naive_logps(model, tok(prompt, add_special_tokens=False)["input_ids"], reply)
        torch.testing.assert_close(out.logp[b][out.response_mask[b]], expected, atol=1e-4, rtol=0)


def test_sampling_time_logprobs_equal_the_rescored_ones(tiny):
    model, tok = tiny
    torch.manual_seed(1)
    samples = sample_responses(model, tok, PROMPTS, max_new_tokens=10, temperature=0.7)
    with torch.no_grad():
        rescored = response_outputs(model, samples, temperature=0.7, with_values=False).logp  # (B, R)
    m = samples.response_mask
    torch.testing.assert_close(samples.logp[m], rescored[m], atol=1e-4, rtol=0)


def test_prompts_shared_by_several_rows_are_scored_once_with_the_same_logprobs(tiny):
    from course_lib.llm.rollout import shared_prompt_response_logprobs

    model, tok = tiny
    torch.manual_seed(5)
    samples = sample_responses(model, tok, [PROMPTS[1], PROMPTS[0], PROMPTS[1], PROMPTS[2], PROMPTS[0]], 5)
    full = response_outputs(model, samples, with_values=False).logp  # (5, R): every row's prompt run again
    shared = shared_prompt_response_logprobs(model, samples)  # (5, R): 3 distinct prompts, each once
    m = samples.response_mask
    torch.testing.assert_close(shared[m], full[m], atol=1e-4, rtol=0)


def test_temperature_1_samples_from_softmax_of_the_logits():
    """Chi-square test of the first sampled token against softmax(logits) on the 8 most likely tokens (+ the rest).

    The head favours 8 tokens (probabilities about 0.21 down to 0.006, the rest 0.47 together), so every bin
    expects at least 12 of the 2,000 draws."""
    model, tok = biased({1000 + k: 10.0 - 0.5 * k for k in range(8)})
    prompt = "Cheese"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), dim=-1)  # (V,)
    top = torch.topk(probs, 8).indices
    n = 2000
    torch.manual_seed(2)
    first = sample(model, tok, [prompt] * n, max_new_tokens=1, temperature=1.0).tokens[:, 0]  # (n,)
    observed = torch.stack([(first == t).sum() for t in top] + [(~torch.isin(first, top)).sum()]).double()
    expected = torch.cat([probs[top], (1 - probs[top].sum()).reshape(1)]).double() * n
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 26.1  # the 0.999 quantile of chi-square with 8 degrees of freedom


def test_temperature_0_is_greedy_and_equals_transformers_generate(tiny):
    model, tok = tiny
    out = sample(model, tok, PROMPTS, max_new_tokens=6, temperature=0)
    batch = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        hf = model.generate(**batch, do_sample=False, max_new_tokens=6, pad_token_id=tok.pad_token_id,
                            temperature=None, top_k=None, top_p=None)[:, batch["input_ids"].shape[1]:]
    assert torch.equal(out.tokens.masked_fill(~out.response_mask, tok.pad_token_id),
                       hf[:, :out.tokens.shape[1]].masked_fill(~out.response_mask, tok.pad_token_id))
    replies = generate(model, tok, PROMPTS, max_new_tokens=6)  # the default: greedy
    assert [list(r.ids) for r in replies] == [out.tokens[b][out.response_mask[b]].tolist() for b in range(3)]


def test_repeated_prompts_share_one_prefill_and_get_the_same_greedy_reply(tiny):
    model, tok = tiny
    alone = sample(model, tok, PROMPTS, max_new_tokens=5, temperature=0)
    repeated = sample(model, tok, [PROMPTS[1], PROMPTS[0], PROMPTS[1], PROMPTS[2], PROMPTS[1]], max_new_tokens=5,
                      temperature=0)
    R = min(alone.tokens.shape[1], repeated.tokens.shape[1])
    for b, u in enumerate([1, 0, 1, 2, 1]):
        assert repeated.tokens[b, :R].tolist() == alone.tokens[u, :R].tolist()
        torch.testing.assert_close(repeated.logp[b, :R], alone.logp[u, :R], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -1.0}, r"temperature: expected a float in \[0, inf\) \(0 decodes greedily\), got -1.0"),
    ({"temperature": float("nan")}, r"temperature: expected a float in \[0, inf\) \(0 decodes greedily\), got nan"),
    ({"prompts": [""]}, "prompts: expected each prompt to encode to at least one token"),
    ({"prompts": ["word " * 600]}, "prompts: expected prompt \\+ max_new_tokens <= the model's context of 512"),
    ({"top_k": 0}, "top_k: expected None or an int >= 1, got 0"),
])
def test_the_sampler_rejects_bad_input_by_name(tiny, kwargs, message):
    model, tok = tiny
    args = {"prompts": PROMPTS, "max_new_tokens": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        sample(model, tok, **args)
    with pytest.raises(ValueError, match=message):
        generate(model, tok, **args)


def test_response_outputs_refuses_a_temperature_that_defines_no_policy(tiny):
    model, tok = tiny
    samples = sample_responses(model, tok, PROMPTS, max_new_tokens=3)
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match=f"temperature: expected a float > 0 .*got {bad}"):
            response_outputs(model, samples, temperature=bad, with_values=False)


# ---- replies keep their ids; EOS is part of every log-prob and score ------------------------------------


def test_a_reply_keeps_its_ids_through_copies_and_files(tmp_path):
    finished, cut = Reply("Hi there", [10, 11, 2], True), Reply("Hi there", [10, 11], False)
    assert finished == cut == "Hi there"  # the same text ...
    for r in (finished, cut):
        for again in (copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
            assert again.ids == r.ids and again.finished == r.finished
    pair = PreferencePair("Q: ", finished, cut)  # ... but different episodes: a real preference
    assert pair_record(pair) == {"prompt": "Q: ", "chosen": "Hi there", "rejected": "Hi there",
                                 "chosen_ids": [10, 11, 2], "chosen_finished": True,
                                 "rejected_ids": [10, 11], "rejected_finished": False}
    save_pairs([pair], tmp_path / "p.jsonl")
    [loaded], report = load_pairs(tmp_path / "p.jsonl")
    assert report.kept == 1 and loaded.chosen.ids == (10, 11, 2) and not loaded.rejected.finished
    with pytest.raises(ValueError, match="'chosen_ids' expected a list of token ids with a bool"):
        from course_lib.data.preferences import validate_pairs
        validate_pairs([{**pair_record(pair), "chosen_ids": "10 11"}])


def test_sampled_replies_keep_the_eos_that_retokenising_the_text_would_lose(stopping):
    model, tok = stopping
    torch.manual_seed(3)
    replies = sample_responses(model, tok, PROMPTS * 4, max_new_tokens=6).texts
    eos = tok.eos_token_id
    assert any(r.finished for r in replies) and any(not r.finished for r in replies)
    for r in replies:
        assert isinstance(r, Reply) and (r.ids[-1] == eos) == r.finished and eos not in r.ids[:-1]
        assert reply_ids(tok, r) == list(r.ids)  # never re-tokenised
    assert reply_ids(tok, "Hello") == tok("Hello", add_special_tokens=False)["input_ids"] + [eos]  # text: finished
    assert as_reply(tok, "Hello").finished


def test_dpo_sft_and_grpo_logprobs_include_the_eos_of_finished_replies(stopping):
    from course_lib.llm.dpo import pair_logps
    from course_lib.llm.rollout import group_response_logprobs
    from course_lib.llm.sft import sft_loss

    model, tok = stopping
    torch.manual_seed(4)
    G = 4
    samples = sample_responses(model, tok, [PROMPTS[0]] * G + [PROMPTS[2]] * G, max_new_tokens=6)
    replies = samples.texts
    assert any(r.finished for r in replies)
    prompts = [PROMPTS[0]] * G + [PROMPTS[2]] * G
    naive = torch.stack([naive_logps(model, tok(p, add_special_tokens=False)["input_ids"], list(r.ids)).sum()
                         for p, r in zip(prompts, replies)])  # (2G,): EOS included where finished
    with torch.no_grad():
        grpo = masked_sum(group_response_logprobs(model, samples, G), samples.response_mask, dim=-1)  # (2G,)
        shared, mask = shared_prompt_logprobs(model, tok, prompts, replies)
        chosen, rejected = pair_logps(model, tok, [PreferencePair(p, replies[i], replies[i + 1])
                                                   for i, p in zip((0, 4), (PROMPTS[0], PROMPTS[2]))])
        loss, n = sft_loss(model, tok, prompts, replies)
    torch.testing.assert_close(grpo, naive, atol=1e-4, rtol=0)
    torch.testing.assert_close(masked_sum(shared, mask, dim=-1), naive, atol=1e-4, rtol=0)
    torch.testing.assert_close(chosen, naive[[0, 4]], atol=1e-4, rtol=0)
    torch.testing.assert_close(rejected, naive[[1, 5]], atol=1e-4, rtol=0)
    assert n == sum(len(r.ids) for r in replies)
    torch.testing.assert_close(loss, -naive.sum() / n, atol=1e-4, rtol=0)


def test_the_reward_model_tells_a_finished_reply_from_a_cut_one(tiny):
    from course_lib.llm.reward_model import REWARD_PRESETS, RewardModel, encode_texts, score_texts, train_reward_model

    model, tok = tiny
    eos = tok.eos_token_id
    prompt = "Q: say something"
    texts = ["Lovely day", "The cheese", "A maze", "Robots are fun", "Hello", "Quiet night"]
    finished = [Reply(t, tok(t, add_special_tokens=False)["input_ids"] + [eos], True) for t in texts]
    cut = [Reply(t, tok(t, add_special_tokens=False)["input_ids"], False) for t in texts]
    ids_f, _ = encode_texts(tok, [prompt], finished[:1], 64)
    ids_c, _ = encode_texts(tok, [prompt], cut[:1], 64)
    assert ids_f[0, -1] == eos and ids_c[0, -1] != eos  # different inputs: the finished one ends with EOS
    assert ids_f.shape[1] == ids_c.shape[1] + 1 and torch.equal(ids_f[:, :-1], ids_c)
    rm = RewardModel(copy.deepcopy(model), seed=0)
    pairs = [PreferencePair(prompt, f, c) for f, c in zip(finished, cut)]
    config = REWARD_PRESETS["ci"].__class__(epochs=3, batch_size=6, learning_rate=1e-2, max_length=64, trainable="all")
    train_reward_model(rm, tok, pairs, config=config, seed=0, progress=False, live=False)
    with torch.no_grad():
        s_f = score_texts(rm.eval(), tok, [prompt] * 6, finished, 64)
        s_c = score_texts(rm, tok, [prompt] * 6, cut, 64)
    assert (s_f > s_c).all(), (s_f, s_c)


def test_a_cut_reply_stays_cut_through_trl(tiny, tmp_path):
    pytest.importorskip("trl")
    from course_lib.llm.scale import reward_model_from, trl_trainer

    model, tok = tiny
    eos = tok.eos_token_id
    prompt = "Q: say something"
    finished = Reply("Hello", tok("Hello", add_special_tokens=False)["input_ids"] + [eos], True)
    cut = Reply("Hello there, I", tok("Hello there, I", add_special_tokens=False)["input_ids"], False)
    pairs = [PreferencePair(prompt, finished, cut), PreferencePair(prompt, "A plain text reply", cut)]
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    dpo = trl_trainer("dpo", copy.deepcopy(model), tok, str(tmp_path / "dpo"), pairs=pairs, steps=1, batch_size=2)
    row = dpo.train_dataset[0]
    assert row["prompt_ids"] == p_ids and row["chosen_ids"] == list(finished.ids)
    assert row["rejected_ids"] == list(cut.ids) and row["rejected_ids"][-1] != eos  # not turned into a finished one
    assert dpo.train_dataset[1]["chosen_ids"][-1] == eos  # a text reply is a finished one, as in TRL
    reward = trl_trainer("reward", reward_model_from(copy.deepcopy(model)), tok, str(tmp_path / "rm"), pairs=pairs,
                         steps=1, batch_size=2)
    row = reward.train_dataset[0]
    assert row["chosen_ids"] == p_ids + list(finished.ids) and row["rejected_ids"] == p_ids + list(cut.ids)


def test_a_prompt_longer_than_the_context_is_named_not_trained_on(tiny):
    """A sequence past max_position_embeddings does not fail in the forward pass; the loops must refuse it."""
    from course_lib.data.preferences import PreferencePair
    from course_lib.llm.dpo import DPOConfig, train_dpo
    from course_lib.llm.generation import completion_logprobs, shared_prompt_logprobs

    model, tok = tiny
    context = model.config.max_position_embeddings
    long_prompt = "word " * (context + 10)
    message = rf"prompts: expected prompt \+ completion <= the model's context of {context} tokens, got \d+ tokens " \
              r"for the prompt 'word word"
    for fn in (completion_logprobs, shared_prompt_logprobs):
        with pytest.raises(ValueError, match=message):
            fn(model, tok, [long_prompt], [" yes"])
    pairs = [PreferencePair("short prompt", " good", " bad"), PreferencePair(long_prompt, " good", " bad")]
    with pytest.raises(ValueError, match=message):
        train_dpo(model, tok, pairs, DPOConfig(batch_size=2, learning_rate=1e-3), progress=False)
    assert completion_logprobs(model, tok, ["short prompt"], [" yes"])[0].shape[0] == 1
