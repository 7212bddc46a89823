"""Lesson 14's checks pass the references (and the library's functions) and fail plausible wrong versions with the
right hint."""

from __future__ import annotations

import re

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.lesson14 import (
    EXERCISES,
    check_group_relative_advantages,
    check_grpo_loss,
    check_parse_answer,
    group_relative_advantages,
    grpo_loss,
    parse_answer,
)

# ---- the references agree with independent computations ---------------------------------------


def test_group_relative_advantages_reference_matches_a_loop():
    for case in EXERCISES["group_relative_advantages"].cases() + EXERCISES["group_relative_advantages"].hidden_cases():
        rewards, scale = (case.args + (True,))[:2]
        out = group_relative_advantages(rewards, scale)
        for b, row in enumerate(rewards.tolist()):
            mean = sum(row) / len(row)
            std = (sum((r - mean) ** 2 for r in row) / (len(row) - 1)) ** 0.5  # Bessel-corrected, as TRL
            for g, r in enumerate(row):
                want = (r - mean) / (std + 1e-4) if scale else r - mean
                assert out[b, g].item() == pytest.approx(want, abs=1e-5)
        assert torch.allclose(out.mean(dim=1), torch.zeros(out.shape[0]), atol=1e-5)  # zero mean per group


def test_the_first_advantage_hint_states_the_reference_value():
    case = EXERCISES["group_relative_advantages"].cases()[0]
    stated = float(re.search(r"the right answer gets about ([+-]\d+\.\d+)", case.hint).group(1))
    assert group_relative_advantages(*case.args)[0, 0].item() == pytest.approx(stated, abs=0.005)


def test_grpo_loss_reference_matches_loops():
    for case in EXERCISES["grpo_loss"].cases() + EXERCISES["grpo_loss"].hidden_cases():
        logp, old, adv, mask, norm = case.args
        N, R = logp.shape
        sums, counts = [], []
        for i in range(N):
            terms = []
            for t in range(R):
                if mask[i, t]:
                    ratio = float(torch.exp(logp[i, t] - old[i, t]))
                    a = float(adv[i])
                    terms.append(min(ratio * a, min(max(ratio, 0.8), 1.2) * a))
            sums.append(sum(terms))
            counts.append(len(terms))
        want = {"sequence": -sum(s / n for s, n in zip(sums, counts)) / N, "token": -sum(sums) / sum(counts),
                "constant": -sum(sums) / (N * R)}[norm]
        assert float(grpo_loss(*case.args)) == pytest.approx(want, rel=1e-4, abs=1e-6), case.about


def test_cases_probe_what_they_say():
    loss_cases = EXERCISES["grpo_loss"].cases()
    logp, old, *_ = loss_cases[0].args
    assert torch.equal(logp, old)  # ratio 1
    logp, old, _, mask, _ = loss_cases[4].args
    assert ((torch.exp(logp - old)[mask] - 1).abs() > 0.2).float().mean() > 0.3  # the clip acts often
    assert torch.isinf(loss_cases[5].args[0]).any()
    assert parse_answer("The answer is 12.0") == 12 and parse_answer("The answer is 12.5") is None


# ---- group_relative_advantages: wrong versions -------------------------------------------------


def adv_population_std(rewards, scale=True):
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / (rewards.std(dim=1, unbiased=False, keepdim=True) + 1e-4) if scale else c


def adv_whole_batch(rewards, scale=True):
    c = rewards - rewards.mean()
    return c / (rewards.std() + 1e-4) if scale else c


def adv_no_eps(rewards, scale=True):
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / rewards.std(dim=1, keepdim=True) if scale else c


def adv_always_scaled(rewards, scale=True):
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / (rewards.std(dim=1, keepdim=True) + 1e-4)


def adv_not_centred(rewards, scale=True):
    return rewards / (rewards.std(dim=1, keepdim=True) + 1e-4) if scale else rewards


def adv_per_column(rewards, scale=True):
    c = rewards - rewards.mean(dim=0, keepdim=True)
    return c / (rewards.std(dim=0, unbiased=False, keepdim=True) + 1e-4) if scale else c  # no warning at B = 1


@pytest.mark.parametrize("wrong, message", [
    (adv_population_std, r"(?s)case 1 of 5 \(one group of 4.*Bessel-corrected\s+std,\s+divided\s+by\s+G\s+-\s+1.*TRL"),
    (adv_whole_batch, r"(?s)case 3 of 5 \(three groups.*one mean and one std per group"),
    (adv_no_eps, r"(?s)case 1 of 5 \(one group of 4.*plus 1e-4"),
    (adv_always_scaled, r"(?s)case 4 of 5 \(scale=False.*without dividing by the std"),
    (adv_not_centred, r"(?s)case 1 of 5 .*subtract the group's mean"),
    (adv_per_column, r"(?s)case 1 of 5 .*"),
])
def test_group_relative_advantages_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_group_relative_advantages(wrong)
    assert "Hint:" in str(err.value)


def test_group_relative_advantages_library_function_passes():
    from course_lib.rl import group_advantages

    assert check_group_relative_advantages(lambda r, scale=True: group_advantages(r, scale)).status == "pass"


# ---- parse_answer: wrong versions ---------------------------------------------------------------


def parse_returns_str(response):
    m = re.findall(r"the answer is\s*[:=]?\s*\**\s*([+-]?\d+)", response, re.IGNORECASE)
    return m[-1] if m else None


def parse_last_number(response):
    m = re.findall(r"[+-]?\d+", response)
    return int(m[-1]) if m else None


def parse_case_sensitive(response):
    m = re.findall(r"[Tt]he answer is ([+-]?\d+)(?!,?\d)(?!\.[1-9])", response)
    return int(m[-1]) if m else None


def parse_first(response):
    m = re.findall(r"the answer is\s*[:=]?\s*\**\s*([+-]?\d+)(?!,?\d)(?!\.\d*[1-9])", response, re.IGNORECASE)
    return int(m[0]) if m else None


def parse_ignores_decimals(response):
    m = re.findall(r"the answer is\s*[:=]?\s*\**\s*([+-]?\d+)(?!,?\d)", response, re.IGNORECASE)
    return int(m[-1]) if m else None


def parse_no_sign(response):
    m = re.findall(r"the answer is\s*[:=]?\s*\**\s*(\d+)(?!,?\d)(?!\.\d*[1-9])", response, re.IGNORECASE)
    return int(m[-1]) if m else None


def parse_strips_commas(response):
    return parse_answer(response.replace(",", ""))  # "1,200" -> 1200


@pytest.mark.parametrize("wrong, message", [
    (parse_returns_str, r"(?s)case 1 of 10 \(the required form.*return the int 12, not the str"),
    (parse_last_number, r"(?s)case 2 of 10 \(a right number but not in the required form.*return None"),
    (parse_case_sensitive, r"(?s)case 3 of 10 \(capitals.*any letter case"),
    (parse_first, r"(?s)case 4 of 10 \(the reply corrects itself.*the last statement counts"),
    (parse_ignores_decimals, r"(?s)case 5 of 10 \(a number that is not an integer.*return None"),
    (parse_no_sign, r"(?s)case 6 of 10 \(a negative answer"),
    (parse_strips_commas, r"(?s)case 7 of 10 \(a thousands separator.*return\s+None"),
])
def test_parse_answer_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_parse_answer(wrong)
    assert "Hint:" in str(err.value)


# ---- grpo_loss: wrong versions ------------------------------------------------------------------


def _terms(logp, old, adv, mask, clip=True):
    zero = torch.zeros_like(logp)
    ratio = torch.exp(torch.where(mask, logp, zero) - torch.where(mask, old, zero))  # finite padding before the exp
    a = adv[:, None]
    t = torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a) if clip else ratio * a
    return torch.where(mask, t, torch.zeros_like(t))


def _reduce(t, mask, norm):
    if norm == "sequence":
        return -(t.sum(1) / mask.sum(1)).mean()
    if norm == "token":
        return -t.sum() / mask.sum()
    return -t.sum() / t.numel()


def loss_token_mean_always(logp, old, adv, mask, loss_norm="sequence"):
    return _reduce(_terms(logp, old, adv, mask), mask, "token")


def loss_divides_by_R(logp, old, adv, mask, loss_norm="sequence"):
    t = _terms(logp, old, adv, mask)
    if loss_norm == "sequence":
        return -(t.sum(1) / t.shape[1]).mean()
    return _reduce(t, mask, loss_norm)


def loss_no_clip(logp, old, adv, mask, loss_norm="sequence"):
    return _reduce(_terms(logp, old, adv, mask, clip=False), mask, loss_norm)


def loss_not_negated(logp, old, adv, mask, loss_norm="sequence"):
    return -_reduce(_terms(logp, old, adv, mask), mask, loss_norm)


def loss_multiplies_mask(logp, old, adv, mask, loss_norm="sequence"):
    ratio = torch.exp(logp - old)
    a = adv[:, None]
    t = torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a) * mask
    return _reduce(t, mask, loss_norm)


def loss_constant_over_real_tokens_max(logp, old, adv, mask, loss_norm="sequence"):
    t = _terms(logp, old, adv, mask)
    if loss_norm == "constant":
        return -t.sum() / (t.shape[0] * int(mask.sum(1).max()))
    return _reduce(t, mask, loss_norm)


def loss_max_instead_of_min(logp, old, adv, mask, loss_norm="sequence"):
    ratio = torch.exp(torch.where(mask, logp, 0.0) - torch.where(mask, old, 0.0))
    a = adv[:, None]
    t = torch.maximum(ratio * a, ratio.clamp(0.8, 1.2) * a)
    return _reduce(torch.where(mask, t, torch.zeros_like(t)), mask, loss_norm)


@pytest.mark.parametrize("wrong, message", [
    (loss_token_mean_always, r"(?s)case 2 of 7 \(responses of different lengths.*divide by its own length"),
    (loss_divides_by_R, r"(?s)case 2 of 7 \(responses of different lengths"),
    (loss_no_clip, r"(?s)case 5 of 7 \(ratios far from 1.*clip the ratio"),
    (loss_not_negated, r"(?s)case 1 of 7 \(two responses of 4 tokens.*minus the mean"),
    (loss_multiplies_mask, r"(?s)case 6 of 7 \(-inf log-probs on padding.*nan \* 0 is nan"),
    (loss_max_instead_of_min, r"(?s)case 5 of 7 .*take the minimum"),
])
def test_grpo_loss_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_grpo_loss(wrong)
    assert "Hint:" in str(err.value)


def test_grpo_loss_constant_divides_by_the_budget_not_the_longest_answer():
    """Dividing 'constant' by N times the longest real answer passes where R equals that length; the public case with
    a budget of 12 and answers of at most 5 tokens tells the two apart and names the mistake (issue 19)."""
    with pytest.raises(CheckFailed, match=r"(?s)case 7 of 7 \(a token budget of 12, the longest answer 5.*not\s+the "
                                          r"longest real answer") as err:
        check_grpo_loss(loss_constant_over_real_tokens_max)
    assert "Hint:" in str(err.value)
    assert check_grpo_loss(grpo_loss).status == "pass"
    logp, old, adv, mask, norm = EXERCISES["grpo_loss"].cases()[6].args
    assert norm == "constant" and logp.shape[1] == 12 and int(mask.sum(1).max()) == 5


# ---- parse_answer: the last statement counts, readable or not (issue 19) --------------------------------


def parse_last_readable(response):
    """The old reference: the last statement that parses, skipping an unreadable last one."""
    found = None
    for m in re.finditer(r"the answer is\s*[:=]?\s*\**\s*([+-]?\d+)(\.\d+)?(?!,?\d)", response, re.IGNORECASE):
        found = int(m.group(1)) if m.group(2) is None or set(m.group(2)[1:]) == {"0"} else None
    return found


def test_parse_answer_an_unreadable_last_statement_is_no_answer():
    assert parse_answer("The answer is 3. Actually the answer is 1,200.") is None
    assert parse_answer("The answer is 4. No, the answer is four.") is None
    assert parse_answer("The answer is 5. Wait, no. The answer is 6.") == 6
    with pytest.raises(CheckFailed, match=r"(?s)case 8 of 10 \(the last statement is unreadable.*expected None, got 3"
                                          r".*the LAST statement decides even when it is not a readable integer"):
        check_parse_answer(parse_last_readable)


# ---- grpo_group_update: the build ----------------------------------------------------------------------

from course_lib.checks.lesson14 import (  # noqa: E402
    LR,
    SECOND_EPOCH_FEEDBACK,
    TinyPolicy,
    check_grpo_group_update,
    check_second_epoch_prediction,
    grpo_group_update,
)
from course_lib.harness.lesson14 import tiny_group  # noqa: E402


def _independent_update(seed, lengths, rewards, loss_norm="token", epochs=1, R=None, pad_id=0, lr=LR, calls=1):
    """The update written out by hand: advantages by formula, the loss by loops, the SGD step by hand; ``calls``
    updates in a row on the same table."""
    replies, mask = tiny_group(seed, lengths, R, pad_id=pad_id)
    table = TinyPolicy(seed, replies.shape[1]).table.detach().clone()  # (R, V)
    losses = []
    for _ in range(calls):
        more, table = _one_update(table, replies, mask, rewards, loss_norm, epochs, lr)
        losses += more
    return losses, table


def _one_update(table, replies, mask, rewards, loss_norm, epochs, lr):
    table = table.clone().requires_grad_(True)  # (R, V)
    G, R = replies.shape
    r = rewards.tolist()
    mean = sum(r) / G
    std = (sum((x - mean) ** 2 for x in r) / (G - 1)) ** 0.5
    adv = [(x - mean) / (std + 1e-4) for x in r]
    with torch.no_grad():
        old = torch.log_softmax(table, -1)[torch.arange(R)[None, :], replies]
    losses = []
    for _ in range(epochs):
        logp = torch.log_softmax(table, -1)[torch.arange(R)[None, :], replies]
        sums, counts = [], []
        for i in range(G):
            terms = [torch.minimum(torch.exp(logp[i, t] - old[i, t]) * adv[i],
                                   torch.exp(logp[i, t] - old[i, t]).clamp(0.8, 1.2) * adv[i])
                     for t in range(R) if mask[i, t]]
            sums.append(sum(terms))
            counts.append(len(terms))
        if loss_norm == "sequence":
            loss = -sum(s / n for s, n in zip(sums, counts)) / G
        elif loss_norm == "token":
            loss = -sum(sums) / sum(counts)
        else:
            loss = -sum(sums) / (G * R)
        grad, = torch.autograd.grad(loss, table)
        with torch.no_grad():
            table -= lr * grad
        losses.append(loss.item())
    return losses, table.detach()


def test_grpo_group_update_reference_equals_an_independent_computation():
    ex = EXERCISES["grpo_group_update"]
    for case in ex.cases() + ex.hidden_cases():
        losses, table = ex.call(grpo_group_update)(*case.args, **case.kwargs)
        want_losses, want_table = _independent_update(*case.args, **case.kwargs)
        assert losses.tolist() == pytest.approx(want_losses, abs=1e-6), case.about
        assert torch.allclose(table, want_table, atol=1e-5), case.about


def test_grpo_group_update_behaviour():
    ex = EXERCISES["grpo_group_update"]
    uniform = ex.cases()[2]
    losses, table = ex.call(grpo_group_update)(*uniform.args)
    assert torch.equal(table, TinyPolicy(uniform.args[0], 4).table.detach())  # no weight moved
    assert losses.abs().max() == 0
    padded = ex.cases()[3]
    seed, lengths, rewards, norm, epochs, R, pad = padded.args
    _, table = ex.call(grpo_group_update)(*padded.args)
    start = TinyPolicy(seed, R).table.detach()
    assert torch.equal(table[max(lengths):], start[max(lengths):])  # positions that are padding in every reply
    assert not torch.equal(table, start)


def _pieces():
    from course_lib.checks.lesson14 import group_relative_advantages as adv_fn
    from course_lib.checks.lesson14 import grpo_loss as loss_fn

    return adv_fn, loss_fn


def upd_old_each_epoch(policy, optimizer, replies, mask, rewards, loss_norm="token", epochs=1):
    adv_fn, loss_fn = _pieces()
    adv = adv_fn(rewards[None, :])[0]
    out = []
    for _ in range(epochs):
        logp = policy(replies)
        loss = loss_fn(logp, logp.detach(), adv, mask, loss_norm)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


def upd_ignores_mask(policy, optimizer, replies, mask, rewards, loss_norm="token", epochs=1):
    return grpo_group_update(policy, optimizer, replies, torch.ones_like(mask), rewards, loss_norm, epochs)


def upd_no_eps(policy, optimizer, replies, mask, rewards, loss_norm="token", epochs=1):
    adv_fn, loss_fn = _pieces()
    adv = (rewards - rewards.mean()) / rewards.std()
    with torch.no_grad():
        old = policy(replies)
    out = []
    for _ in range(epochs):
        loss = loss_fn(policy(replies), old, adv, mask, loss_norm)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


def upd_no_zero_grad(policy, optimizer, replies, mask, rewards, loss_norm="token", epochs=1):
    adv_fn, loss_fn = _pieces()
    adv = adv_fn(rewards[None, :])[0]
    with torch.no_grad():
        old = policy(replies)
    out = []
    for _ in range(epochs):
        loss = loss_fn(policy(replies), old, adv, mask, loss_norm)
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


def upd_ignores_loss_norm(policy, optimizer, replies, mask, rewards, loss_norm="token", epochs=1):
    return grpo_group_update(policy, optimizer, replies, mask, rewards, "token", epochs)


def upd_returns_last_loss(policy, optimizer, replies, mask, rewards, loss_norm="token", epochs=1):
    return grpo_group_update(policy, optimizer, replies, mask, rewards, loss_norm, epochs)[-1]


def upd_old_with_gradient(policy, optimizer, replies, mask, rewards, loss_norm="token", epochs=1):
    """The old log-probs keep their gradient: ratio exp(logp - old) is 1 with a cancelling gradient, nothing moves
    (and a second epoch's backward would run through the freed graph of `old` again). The loss is a learner's, which
    does not detach old_logp itself (the library's grpo_token_loss does, and would hide the mistake)."""
    adv_fn, _ = _pieces()
    loss_fn = lambda lp, o, a, m, norm: _reduce(_terms(lp, o, a, m), m, norm)  # noqa: E731
    adv = adv_fn(rewards[None, :])[0]
    old = policy(replies)
    out = []
    for _ in range(epochs):
        loss = loss_fn(policy(replies), old, adv, mask, loss_norm)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


def _update_with_advantages(adv_of):
    def update(policy, optimizer, replies, mask, rewards, loss_norm="token", epochs=1):
        _, loss_fn = _pieces()
        adv = adv_of(rewards)
        with torch.no_grad():
            old = policy(replies)
        out = []
        for _ in range(epochs):
            loss = loss_fn(policy(replies), old, adv, mask, loss_norm)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            out.append(loss.item())
        return out

    return update


def _student_advantages(rewards, scale=True):
    """The notebook's group_relative_advantages, as a learner writes it (reductions along dim=1, no shape check)."""
    import warnings

    centred = rewards - rewards.mean(dim=1, keepdim=True)
    with warnings.catch_warnings():  # a group of one has no Bessel std: nan, with torch's warning
        warnings.simplefilter("ignore", UserWarning)
        return centred / (rewards.std(dim=1, keepdim=True) + 1e-4) if scale else centred


upd_rewards_as_vector = _update_with_advantages(lambda r: _student_advantages(r))  # (G,): no dim 1
upd_rewards_as_column = _update_with_advantages(lambda r: _student_advantages(r[:, None])[:, 0])  # G groups of one


@pytest.mark.parametrize("wrong, message", [
    (upd_old_each_epoch, r"(?s)case 6 of 7 \(three epochs on the same group.*compute the old log-probs ONCE"),
    (upd_ignores_mask, r"(?s)case 4 of 7 \(replies of different lengths, padded.*no padded position"),
    (upd_no_eps, r"(?s)case 3 of 7 \(a group whose rewards are all equal.*non-finite.*lost its 1e-4"),
    (upd_no_zero_grad, r"(?s)case 5 of 7 \(two updates in a row.*result\[1\] \(table\).*gradients piled up.*"
                       r"zero_grad\) before every backward"),
    (upd_old_with_gradient, r"(?s)case 2 of 7 \(the same group, one SGD step.*result\[1\] \(table\).*old log-probs "
                            r"carry\s+a gradient.*under no-grad"),
    (upd_rewards_as_vector, r"(?s)case 1 of 7 \(the losses alone.*raised IndexError.*ONE row, shape \(1, G\)"),
    (upd_rewards_as_column, r"(?s)case 1 of 7 \(the losses alone.*non-finite.*a \(G, 1\) column is G\s+groups of one"),
    (upd_ignores_loss_norm, r"(?s)case 7 of 7 \(GRPO's per-reply mean.*pass loss_norm on"),
    (upd_returns_last_loss, r"(?s)case 1 of 7 .*return a list of the epochs' loss values"),
])
def test_grpo_group_update_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_grpo_group_update(wrong)
    assert "Hint:" in str(err.value)


def test_grpo_group_update_passes_with_the_library_pieces():
    assert check_grpo_group_update(grpo_group_update).status == "pass"


def test_second_epoch_prediction_feedback_explains_without_the_answer():
    from course_lib.checks.lesson14 import EXERCISES as ALL

    assert check_second_epoch_prediction("d").status == "pass"
    assert set(SECOND_EPOCH_FEEDBACK) == {"A", "B", "C"}  # every wrong option has its own feedback
    for wrong, why in SECOND_EPOCH_FEEDBACK.items():
        with pytest.raises(CheckFailed) as err:
            check_second_epoch_prediction(wrong)
        assert why[:40] in str(err.value)
        assert "'D'" not in str(err.value) and "-0.0116" not in str(err.value) and "below 0" not in str(err.value)
    assert "-0.0116" in ALL["second_epoch_prediction"].explanation  # printed only once right


def test_second_epoch_prediction_is_what_the_run_shows():
    """The notebook's experiment: one wrong answer among seven right ones, 8 answers of 5 tokens, two epochs: the first
    loss is 0 up to rounding, the second below 0 (the right answer, D), no ratio clipped; the all-right group moves
    nothing."""
    g = torch.Generator().manual_seed(3)
    answers = torch.randint(6, (8, 5), generator=g)
    real = torch.ones(8, 5, dtype=torch.bool)
    moved = {}
    for name, rewards in (("all right", torch.full((8,), 1.5)), ("one wrong", torch.tensor([0.0] + [1.5] * 7))):
        for epochs in (1, 2):
            policy = TinyPolicy(0, 5)
            start = policy.table.detach().clone()
            losses = grpo_group_update(policy, torch.optim.SGD(policy.parameters(), lr=LR), answers, real, rewards,
                                       "token", epochs)
            moved[name, epochs] = (float((policy.table.detach() - start).abs().max()), losses)
    first, second = moved["one wrong", 2][1]
    assert abs(first) < 1e-6 and round(second, 4) == -0.0116  # 0, then below 0
    assert round(moved["one wrong", 1][0], 4) == 0.0309 and round(moved["one wrong", 2][0], 4) == 0.0617
    assert moved["all right", 1][0] == moved["all right", 2][0] == 0.0 and moved["all right", 2][1] == [0.0, 0.0]
    policy = TinyPolicy(0, 5)
    with torch.no_grad():
        old = policy(answers)
    grpo_group_update(policy, torch.optim.SGD(policy.parameters(), lr=LR), answers, real,
                      torch.tensor([0.0] + [1.5] * 7), "token", 1)
    with torch.no_grad():
        ratio = torch.exp(policy(answers) - old)  # the second epoch's ratios
    assert (ratio[0] < 1).all() and 0.8 < ratio.min() and ratio.max() < 1.2  # the wrong answer's down, no clip
    assert round(float(ratio[0].min()), 2) == 0.97 and round(float(ratio.max()), 2) == 1.02  # as the explanation says


# ---- grpo_loss: the gradient w.r.t. logp is compared too (play-test) ------------------------------------------


def loss_where_after_exp(logp, old, adv, mask, loss_norm="sequence"):
    """The terms from the raw log-probs (-inf on padding), the padding zeroed by a where afterwards: the right value,
    but nan gradients at the padded positions (where() passes the nan of exp(-inf - (-inf)) back to logp)."""
    ratio = torch.exp(logp - old)
    a = adv[:, None]
    t = torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a)
    return _reduce(torch.where(mask, t, torch.zeros_like(t)), mask, loss_norm)


def test_grpo_loss_where_after_the_exp_fails_on_its_nan_gradient():
    case = EXERCISES["grpo_loss"].cases()[5]
    logp = case.args[0].clone().requires_grad_(True)
    value = loss_where_after_exp(logp, *case.args[1:])
    assert torch.isfinite(value) and float(value.detach()) == pytest.approx(float(grpo_loss(*case.args)), rel=1e-5)
    assert torch.isnan(torch.autograd.grad(value, logp)[0]).any()  # the value is right, the gradient is not
    with pytest.raises(CheckFailed, match=r"(?s)case 6 of 7 \(-inf log-probs on padding.*d loss / d logp.*non-finite"
                                          r".*where on the mask AFTER the exp.*BEFORE the exp") as err:
        check_grpo_loss(loss_where_after_exp)
    assert "Hint:" in str(err.value)


def test_grpo_loss_reference_has_finite_gradients_zero_on_padding():
    ex = EXERCISES["grpo_loss"]
    assert any(torch.isinf(c.args[0]).any() for c in ex.hidden_cases())  # the grader sees -inf padding too
    for case in ex.cases() + ex.hidden_cases():
        loss, grad = ex.call(grpo_loss)(*case.args)
        mask = case.args[3]
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), case.about
        assert torch.equal(grad[~mask], torch.zeros_like(grad[~mask])), case.about
        assert grad[mask].abs().sum() > 0, case.about
    assert check_grpo_loss(grpo_loss).status == "pass"
    assert check_grpo_loss(lambda lp, old, adv, mask, norm="sequence": _reduce(_terms(lp, old, adv, mask), mask,
                                                                                  norm)).status == "pass"


def test_the_grpo_loss_stronger_hint_puts_the_padding_before_the_exp():
    from course_lib.checks.lesson14 import HINTS

    text = " ".join(HINTS["grpo_loss"].split())
    assert "BEFORE the exp" in text and "still passes nan gradients" in text
    assert "Then zero the padding by SELECTING" not in text  # the old, broken order


# ---- parse_answer: backtracking, decimals and the plus sign (play-test) -----------------------------------------


def parse_backtracks(response):
    """Refuses only ',<digit>' right after the match: on '12,000' the digits shrink to '1', followed by '2'."""
    starts = [m.end() for m in re.finditer(r"the answer is", response, re.IGNORECASE)]
    if not starts:
        return None
    m = re.compile(r"\s*[:=]?\s*\**\s*([+-]?\d+)(\.\d+)?(?!,\d)").match(response, starts[-1])
    if m is None:
        return None
    return int(m.group(1)) if m.group(2) is None or set(m.group(2)[1:]) == {"0"} else None


def parse_no_plus(response):
    starts = [m.end() for m in re.finditer(r"the answer is", response, re.IGNORECASE)]
    if not starts:
        return None
    m = re.compile(r"\s*[:=]?\s*\**\s*(-?\d+)(\.\d+)?(?!,?\d)").match(response, starts[-1])
    if m is None:
        return None
    return int(m.group(1)) if m.group(2) is None or set(m.group(2)[1:]) == {"0"} else None


def parse_truncates_decimals(response):
    """Reads the digits before the '.', whatever follows: '45.5' -> 45."""
    m = re.findall(r"the answer is\s*[:=]?\s*\**\s*([+-]?\d+)(?!,?\d)", response, re.IGNORECASE)
    return int(m[-1]) if m else None


def test_parse_answer_the_new_rules():
    assert parse_answer("The answer is 12,000") is None  # a thousands comma: no answer, not 1 and not 12000
    assert parse_answer("The answer is 45.5") is None  # integer answers only
    assert parse_answer("The answer is +7.") == 7 and parse_answer("The answer is: **+12**") == 12
    assert parse_answer("So the answer is 25,000.") is None
    assert parse_backtracks("The answer is 12,000") == 1 and parse_backtracks("So the answer is 25,000.") == 2
    for text in ("THE ANSWER IS: **9**", "The answer is 12.5", "The answer is 1,200", "The answer is -3, I think."):
        assert parse_backtracks(text) == parse_answer(text)  # it passes the other public cases
    from course_lib.checks.lesson14 import parse_answer as reference

    doc = " ".join(reference.__doc__.split())
    assert '"-" or "+"' in doc and "45.5" in doc and "12,000" in doc


@pytest.mark.parametrize("wrong, message", [
    (parse_backtracks, r"(?s)case 9 of 10 \(a thousands comma after two digits.*expected None, got 1.*gives back "
                       r"digits.*no shorter prefix"),
    (parse_no_plus, r"(?s)case 10 of 10 \(a leading plus sign.*expected a number, got NoneType.*'\+' is a sign"),
    (parse_truncates_decimals, r"(?s)case 5 of 10 \(a number that is not an integer.*return None"),
])
def test_parse_answer_backtracking_and_plus_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_parse_answer(wrong)
    assert "Hint:" in str(err.value)


def test_parse_answer_hidden_cases_catch_the_decimal_and_the_commas():
    from course_lib.checks.core import compare

    hidden = {c.args[0]: c for c in EXERCISES["parse_answer"].hidden_cases()}
    assert {"The answer is 45.5", "So the answer is 25,000.", "The answer is: **+12**"} <= set(hidden)
    assert parse_truncates_decimals("The answer is 45.5") == 45
    assert parse_backtracks("So the answer is 25,000.") == 2 and parse_no_plus("The answer is: **+12**") is None
    for text in hidden:
        assert compare(parse_answer(text), parse_answer(text)) is None


# ---- grpo_group_update: specific hints (play-test) ------------------------------------------------------------


def test_grpo_group_update_cases_separate_the_mistakes():
    """Each mistake fails first where its own hint is: the lr-0 case passes a version whose old log-probs carry a
    gradient; the single-update cases pass a version without zero_grad; the two-updates case passes a version that
    recomputes the old log-probs every epoch."""
    import time

    ex = EXERCISES["grpo_group_update"]
    cases = ex.cases()
    run_ok = lambda fn, c: ex.compare(ex.call(grpo_group_update)(*c.args, **c.kwargs),  # noqa: E731
                                      ex.call(fn)(*c.args, **c.kwargs)) is None
    assert cases[0].kwargs == {"lr": 0.0} and run_ok(upd_old_with_gradient, cases[0])
    assert all(run_ok(upd_no_zero_grad, c) for c in cases[:4])
    assert run_ok(upd_old_each_epoch, cases[4]) and not run_ok(upd_no_zero_grad, cases[4])
    started = time.perf_counter()
    assert check_grpo_group_update(grpo_group_update).status == "pass"
    assert time.perf_counter() - started < 5  # the check stays fast (about 1-2 s)
