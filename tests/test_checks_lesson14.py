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
    (parse_returns_str, r"(?s)case 1 of 8 \(the required form.*return the int 12, not the str"),
    (parse_last_number, r"(?s)case 2 of 8 \(a right number but not in the required form.*return None"),
    (parse_case_sensitive, r"(?s)case 3 of 8 \(capitals.*any letter case"),
    (parse_first, r"(?s)case 4 of 8 \(the reply corrects itself.*the last statement counts"),
    (parse_ignores_decimals, r"(?s)case 5 of 8 \(a number that is not an integer.*return None"),
    (parse_no_sign, r"(?s)case 6 of 8 \(a negative answer"),
    (parse_strips_commas, r"(?s)case 7 of 8 \(a thousands separator.*return\s+None"),
])
def test_parse_answer_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_parse_answer(wrong)
    assert "Hint:" in str(err.value)


# ---- grpo_loss: wrong versions ------------------------------------------------------------------


def _terms(logp, old, adv, mask, clip=True):
    ratio = torch.exp(logp - old)
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
    ratio = torch.exp(logp - old)
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
    with pytest.raises(CheckFailed, match=r"(?s)case 8 of 8 \(the last statement is unreadable.*expected None, got 3"
                                          r".*the LAST statement decides even when it is not a readable integer"):
        check_parse_answer(parse_last_readable)


# ---- grpo_group_update: the build ----------------------------------------------------------------------

from course_lib.checks.lesson14 import (  # noqa: E402
    LR,
    UNIFORM_FEEDBACK,
    TinyPolicy,
    _group,
    check_grpo_group_update,
    check_uniform_group_prediction,
    grpo_group_update,
)


def _independent_update(seed, lengths, rewards, loss_norm="token", epochs=1, R=None, pad_id=0):
    """The update written out by hand: advantages by formula, the loss by loops, the SGD step by hand."""
    replies, mask = _group(seed, lengths, R, pad_id=pad_id)
    table = TinyPolicy(seed, replies.shape[1]).table.detach().clone().requires_grad_(True)  # (R, V)
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
            table -= LR * grad
        losses.append(loss.item())
    return losses, table.detach()


def test_grpo_group_update_reference_equals_an_independent_computation():
    ex = EXERCISES["grpo_group_update"]
    for case in ex.cases() + ex.hidden_cases():
        losses, table = ex.call(grpo_group_update)(*case.args)
        want_losses, want_table = _independent_update(*case.args)
        assert losses.tolist() == pytest.approx(want_losses, abs=1e-6), case.about
        assert torch.allclose(table, want_table, atol=1e-5), case.about


def test_grpo_group_update_behaviour():
    ex = EXERCISES["grpo_group_update"]
    uniform = ex.cases()[1]
    losses, table = ex.call(grpo_group_update)(*uniform.args)
    assert torch.equal(table, TinyPolicy(uniform.args[0], 4).table.detach())  # no weight moved
    assert losses.abs().max() == 0
    padded = ex.cases()[2]
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


@pytest.mark.parametrize("wrong, message", [
    (upd_old_each_epoch, r"(?s)case 4 of 5 \(three epochs on the same group.*compute the old log-probs ONCE"),
    (upd_ignores_mask, r"(?s)case 3 of 5 \(replies of different lengths, padded.*no padded position"),
    (upd_no_eps, r"(?s)case 2 of 5 \(a group whose rewards are all equal.*non-finite.*lost its 1e-4"),
    (upd_no_zero_grad, r"(?s)case 4 of 5 \(three epochs.*"),
    (upd_ignores_loss_norm, r"(?s)case 5 of 5 \(GRPO's per-reply mean.*pass loss_norm on"),
    (upd_returns_last_loss, r"(?s)case 1 of 5 .*return a list of the epochs' loss values"),
])
def test_grpo_group_update_wrong_versions_fail_with_the_right_hint(wrong, message):
    with pytest.raises(CheckFailed, match=message) as err:
        check_grpo_group_update(wrong)
    assert "Hint:" in str(err.value)


def test_grpo_group_update_passes_with_the_library_pieces():
    assert check_grpo_group_update(grpo_group_update).status == "pass"


def test_uniform_group_prediction_feedback_explains_without_the_answer():
    assert check_uniform_group_prediction("b").status == "pass"
    for wrong, why in UNIFORM_FEEDBACK.items():
        with pytest.raises(CheckFailed) as err:
            check_uniform_group_prediction(wrong)
        assert why.split(":")[0][:40] in str(err.value)
        assert "'B'" not in str(err.value) and "exactly 0" not in str(err.value)


def test_every_function_exercise_has_a_stronger_hint_without_code():
    """Tier 2 (issue 19): hint(name, 2) prints a HINTS entry for every function exercise of this lesson."""
    from course_lib.checks import lesson14 as module
    from course_lib.checks.core import hint

    for name, ex in module.EXERCISES.items():
        if ex.kind == "function":
            assert len(module.HINTS.get(name, "")) > 200, name
            hint(name, 2)
