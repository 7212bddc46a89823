"""The Bradley-Terry loss and the reward model's last-token read-out under left and right padding."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from course_lib.data.preferences import PreferencePair
from course_lib.llm.models import tiny_model
from course_lib.llm.reward_model import (
    REWARD_PRESETS,
    RewardConfig,
    _blocks,
    _score_distinct,
    encode_texts,
    score_texts,
    RewardModel,
    last_token_index,
    load_reward_model,
    save_reward_model,
    score_pairs,
    score_responses,
    train_reward_model,
)
from course_lib.rl import bradley_terry_loss


def test_bradley_terry_loss_equals_the_formula_on_hand_made_scores():
    chosen = torch.tensor([2.0, 0.5, -1.0])
    rejected = torch.tensor([1.0, 0.5, 1.0])
    loss, info = bradley_terry_loss(chosen, rejected)
    by_hand = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(0.5) + math.log(1 / (1 + math.exp(2.0)))) / 3
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    assert info == {"accuracy": pytest.approx(1 / 3), "margin": pytest.approx((1.0 + 0.0 - 2.0) / 3)}


def test_bradley_terry_loss_depends_only_on_differences_and_is_stable_far_out():
    chosen, rejected = torch.tensor([0.3, -2.0]), torch.tensor([1.0, 4.0])
    assert bradley_terry_loss(chosen + 7, rejected + 7)[0].item() == pytest.approx(
        bradley_terry_loss(chosen, rejected)[0].item(), rel=1e-6)
    far = bradley_terry_loss(torch.tensor([-500.0]), torch.tensor([500.0]))[0]
    assert torch.isfinite(far) and far.item() == pytest.approx(1000.0)


def test_margin_asks_for_a_larger_gap_and_gradients_push_scores_apart():
    chosen = torch.tensor([1.0], requires_grad=True)
    rejected = torch.tensor([0.0], requires_grad=True)
    plain, _ = bradley_terry_loss(chosen, rejected)
    with_margin, _ = bradley_terry_loss(chosen, rejected, margin=torch.tensor([1.0]))
    assert with_margin.item() == pytest.approx(math.log(2)) and with_margin > plain
    with_margin.backward()
    assert chosen.grad.item() < 0 < rejected.grad.item()  # descent raises chosen, lowers rejected


def test_bradley_terry_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"rejected_rewards: expected shape \(B,\) = \(3,\) like chosen_rewards, got \(2,\)"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(2))
    # a (B, 1) chosen tensor is named as the culprit, not the (B,) rejected one
    with pytest.raises(ValueError, match=r"chosen_rewards: expected shape \(B,\) = \(3,\).*got \(3, 1\)"):
        bradley_terry_loss(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError, match=r"rejected_rewards: expected shape \(B,\) = \(3,\).*got \(3, 1\)"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"margin: expected shape \(2,\), got \(3,\)"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(2), margin=torch.zeros(3))


def test_last_token_index_matches_a_loop_for_left_and_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]])
    expected = [max(t for t in range(5) if mask[b, t]) for b in range(4)]
    assert last_token_index(mask).tolist() == expected == [2, 4, 4, 1]
    with pytest.raises(ValueError, match=r"attention_mask: expected at least one real token per row, rows \[1\]"):
        last_token_index(torch.tensor([[1, 0], [0, 0]]))


def _pad(rows, side, pad_id):
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for b, r in enumerate(rows):
        sl = slice(0, len(r)) if side == "right" else slice(T - len(r), T)
        ids[b, sl], mask[b, sl] = torch.tensor(r), 1
    return ids, mask


def test_reward_model_scores_do_not_depend_on_the_padding_side():
    lm, tok = tiny_model(seed=0)
    rm = RewardModel(lm).eval()
    rows = [tok("The robot found the cheese.")["input_ids"], tok("Lost.")["input_ids"]]
    alone = torch.stack([rm(torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long))[0] for r in rows])
    for side in ("left", "right"):
        ids, mask = _pad(rows, side, tok.pad_token_id)
        with torch.no_grad():
            scores = rm(ids, mask)
        assert scores.shape == (2,) and torch.allclose(scores, alone, atol=1e-5), side


def test_reward_model_trains_head_and_body_and_shares_the_body():
    lm, tok = tiny_model(seed=0)
    rm = RewardModel(lm)
    assert rm.body is lm.model
    ids, mask = _pad([tok("good")["input_ids"], tok("bad bad")["input_ids"]], "left", tok.pad_token_id)
    scores = rm(ids, mask)
    loss, _ = bradley_terry_loss(scores[:1], scores[1:])
    loss.backward()
    assert rm.head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in rm.body.layers.parameters())


def test_training_on_an_easy_preference_learns_it_and_reports_held_out_accuracy():
    lm, tok = tiny_model(seed=0)
    rm = RewardModel(lm)
    words = ["robot", "cheese", "maze", "cat", "lever", "path", "wall", "day"]
    pairs = [PreferencePair(f"Tell me about the {w}.", f"The {w} is lovely, thank you!", f"The {w}.")
             for w in words]
    config = replace(REWARD_PRESETS["ci"], epochs=8, learning_rate=1e-2)
    logger = train_reward_model(rm, tok, pairs[:6], pairs[6:], config, progress=False)
    chosen, rejected = score_pairs(rm, tok, pairs)
    assert bool((chosen > rejected).all())
    assert logger.last("rm/eval_accuracy") == 1.0
    _, losses = logger.as_arrays("rm/loss")
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("trainable", ["top:1", "lora:2"])
def test_a_saved_reward_model_scores_the_same_after_loading(tmp_path, trainable):
    lm, tok = tiny_model(seed=0)
    rm = RewardModel(lm)
    pairs = [PreferencePair("Q:", "Lovely, thank you!", "No."), PreferencePair("Q2:", "Great!", "Bad.")]
    train_reward_model(rm, tok, pairs, None, replace(REWARD_PRESETS["ci"], trainable=trainable,
                                                     learning_rate=1e-2), progress=False)
    n = save_reward_model(rm, tmp_path / "rm.pt", trainable)
    assert n == sum(p.requires_grad for p in rm.parameters())  # only what training moved
    again = load_reward_model(tmp_path / "rm.pt", tiny_model(seed=0)[0])
    assert torch.equal(torch.stack(score_pairs(again, tok, pairs)), torch.stack(score_pairs(rm, tok, pairs)))
    assert not any(p.requires_grad for p in again.parameters())
    other, _ = tiny_model(seed=1)  # another base: the frozen weights differ, so the scores do
    assert not torch.equal(torch.stack(score_pairs(load_reward_model(tmp_path / "rm.pt", other), tok, pairs)),
                           torch.stack(score_pairs(rm, tok, pairs)))
    with pytest.raises(FileNotFoundError, match="path: expected a reward model saved by save_reward_model"):
        load_reward_model(tmp_path / "missing.pt", lm)


def test_scoring_responses_alone_equals_their_score_inside_a_pair():
    lm, tok = tiny_model(seed=0)
    rm = RewardModel(lm)
    pairs = [PreferencePair("Q:", "Lovely, thank you!", "No."), PreferencePair("Another question:", "Great!", "Bad.")]
    chosen, rejected = score_pairs(rm, tok, pairs)
    alone = score_responses(rm, tok, [p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs],
                            batch_size=3)
    torch.testing.assert_close(alone, torch.cat([chosen, rejected]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="prompts, responses: expected equal lengths, got 1, 2"):
        score_responses(rm, tok, ["Q:"], ["a", "b"])


def test_reward_config_errors_name_the_field():
    with pytest.raises(ValueError, match="max_length: expected an int >= 2, got 1"):
        RewardConfig(max_length=1)
    with pytest.raises(ValueError, match=r"learning_rate: expected a float in \(0, 1\), got 0"):
        RewardConfig(learning_rate=0)


def test_pairs_of_one_ranked_group_share_a_batch_and_each_response_is_scored_once():
    from course_lib.data.annotators import pairs_from_ranking

    lm, tok = tiny_model(seed=0)
    rm = RewardModel(lm)
    groups = [(f"Prompt {g}:", [f"reply {g}.{k}" for k in range(4)]) for g in range(3)]
    pairs = [pair for prompt, group in groups for pair in pairs_from_ranking(prompt, group, [2, 0, 3, 1], "all")]
    assert len(pairs) == 18  # 6 pairs per group of 4
    rows = []
    rm.body.register_forward_hook(lambda module, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]),
                                  with_kwargs=True)
    train_reward_model(rm, tok, pairs, None, replace(REWARD_PRESETS["ci"], batch_size=6, epochs=1), progress=False)
    assert rows == [1, 4] * 3  # one batch per group: its prompt once, then its 4 distinct responses for 6 pairs
    chosen, rejected = score_pairs(rm, tok, pairs)
    c2, r2 = _score_distinct(rm, tok, pairs, 128)
    torch.testing.assert_close(torch.stack([c2, r2]).detach(), torch.stack([chosen, rejected]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("trainable", ["all", "lora:2"])
def test_a_shared_prompt_prefix_gives_the_plain_encodings_scores_and_gradients(trainable):
    from course_lib.llm.finetune import train_top_layers

    lm, tok = tiny_model(seed=0)
    rm = RewardModel(lm)
    params = train_top_layers(rm.body, [rm.head], trainable)
    prompts = ["A longer first prompt, with words:", "Q:", "A longer first prompt, with words:", "Q:", "Q:"]
    responses = ["Lovely, thank you!", "No.", "It is a fine day for the robot.", "Great!", "No."]
    shared = score_texts(rm, tok, prompts, responses, max_length=64)
    plain = rm(*encode_texts(tok, prompts, responses, 64))
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-4)
    grads = [torch.autograd.grad(scores.square().sum(), params) for scores in (shared, plain)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    rows = []
    rm.body.register_forward_hook(lambda module, args, kwargs, out: rows.append(tuple(kwargs["input_ids"].shape)),
                                  with_kwargs=True)
    score_texts(rm, tok, prompts, responses, max_length=64)
    assert [r[0] for r in rows] == [2, 5]  # 2 distinct prompts, then the 5 responses on their cached prefixes
    rows.clear()  # a text longer than max_length: the plain encoding, which cuts each row on its own
    cut = score_texts(rm, tok, prompts, responses, max_length=8)
    assert [r[0] for r in rows] == [5]
    torch.testing.assert_close(cut, rm(*encode_texts(tok, prompts, responses, 8)), atol=1e-5, rtol=1e-4)
    rows.clear()  # an empty prompt has no prefix to share: the plain encoding again
    empty = score_texts(rm, tok, ["", "Q:"], ["Lovely!", "No."], max_length=64)
    assert [r[0] for r in rows] == [2]
    torch.testing.assert_close(empty, rm(*encode_texts(tok, ["", "Q:"], ["Lovely!", "No."], 64)), atol=1e-5, rtol=1e-4)


def test_a_run_of_pairs_with_one_prompt_is_cut_at_the_batch_size():
    pairs = [PreferencePair("same", f"a{i}", f"b{i}") for i in range(5)] + [PreferencePair("other", "a", "b")]
    assert _blocks(pairs, 2) == [[0, 1], [2, 3], [4], [5]]


def test_keep_best_ends_with_the_epoch_the_validation_pairs_chose():
    lm, tok = tiny_model(seed=0)
    rm = RewardModel(lm)
    words = ["robot", "cheese", "maze", "cat", "lever", "path", "wall", "day", "tram", "kite"]
    pairs = [PreferencePair(f"Tell me about the {w}.", f"The {w} is lovely, thank you!", f"The {w}.")
             for w in words]
    validation = [PreferencePair(p.prompt, p.rejected, p.chosen) for p in pairs[8:]]  # flipped: training hurts them
    config = replace(REWARD_PRESETS["ci"], epochs=3, learning_rate=1e-2)
    logger = train_reward_model(rm, tok, pairs[:8], validation, config, progress=False, keep_best=True)
    _, accuracies = logger.as_arrays("rm/eval_accuracy")
    best = int(logger.last("rm/best_epoch"))
    assert best == 1 + int(max(range(len(accuracies)), key=lambda k: (accuracies[k], -k)))  # earliest of the best
    chosen, rejected = score_pairs(rm, tok, validation)
    assert float((chosen > rejected).float().mean()) == accuracies[best - 1]  # its weights, not the last epoch's
    with pytest.raises(ValueError, match="keep_best: expected eval_pairs"):
        train_reward_model(rm, tok, pairs, None, config, progress=False, keep_best=True)


def test_the_bag_of_words_baseline_learns_words_and_chooses_its_strength_on_validation():
    from course_lib.llm.reward_model import bag_of_words_baseline

    def pairs(topics):
        return [PreferencePair(f"About {t}?", f"The {t} is lovely and kind.", f"The {t} is awful and rude.")
                for t in topics]

    result = bag_of_words_baseline(pairs(["tram", "kite", "cake"]), pairs(["pond", "lift"]), pairs(["bus", "boat"]),
                                   grid=(0.1, 1.0))
    assert result["test_accuracy"] == 1.0 and result["validation_accuracy"] == 1.0
    assert result["C"] == 0.1 and result["pair_right"] == [True, True]  # equal on validation: the stronger penalty
    words_only = pairs(["tram"]) + [PreferencePair("About tram?", "The tram is awful and rude.", "The tram is lovely.")]
    # the, tram, is, lovely, and, kind, awful, rude: the replies' words only ("about", the prompt's, is not read)
    assert bag_of_words_baseline(words_only, pairs(["pond"]), pairs(["bus"]))["words"] == 8
    with pytest.raises(ValueError, match="validation_pairs: expected at least one preference pair"):
        bag_of_words_baseline(pairs(["tram"]), [], pairs(["bus"]))
