"""The PPO family's shared core: numbers recorded once, before the core was shared, and recomputed now.

CartPole's PPO, REINFORCE, RLHF-PPO and GRPO on the tiny model (short seeded runs on the CPU in fp32),
and the clipped losses on fixed random tensors, must give bit for bit the numbers stored in
``tests/data/ppo_core_baseline.json``: every float is compared with ``==`` after a JSON round trip
(``json`` writes ``repr(float)``, which reads back exactly), parameters by a SHA-256 of their bytes.

The baseline was recorded by running this file as a script (``python tests/test_ppo_core.py --record``)
with the library as it was before its PPO core was shared; the script refuses to overwrite it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

BASELINE = Path(__file__).resolve().parent / "data" / "ppo_core_baseline.json"
PROMPTS = ["The robot", "The cat", "Cheese is", "A maze"]


def _lowercase_share(prompts, texts):
    """A toy reward: the share of lower-case characters of each text (as conftest's)."""
    return [sum(c.islower() for c in t) / max(len(t), 1) for t in texts]


def _params(module: torch.nn.Module) -> dict:
    """A bitwise fingerprint of every tensor of ``module``'s state: SHA-256 of the bytes, and a float64 sum."""
    digest = hashlib.sha256()
    total = 0.0
    for name, tensor in sorted(module.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(name.encode())
        digest.update(array.tobytes())
        total += float(np.sum(array, dtype=np.float64))
    return {"sha256": digest.hexdigest(), "sum": total}


def _history(logger) -> dict:
    return {name: [[int(step), float(value)] for step, value in logger.history[name]] for name in logger.names()}


def _loss_numbers(loss: torch.Tensor, info: dict, logp: torch.Tensor) -> dict:
    """The loss, each diagnostic, and the gradient it sends to ``logp``."""
    logp.grad = None
    loss.backward()
    return {"loss": float(loss.detach()), "info": {k: float(v) for k, v in sorted(info.items())},
            "grad_sha256": hashlib.sha256(logp.grad.numpy().tobytes()).hexdigest()}


def loss_numbers() -> dict:
    """``clipped_surrogate`` and ``grpo_token_loss`` on fixed random (N, R) tensors, every setting."""
    from course_lib.llm.grpo import LOSS_NORMS, grpo_token_loss
    from course_lib.rl import clipped_surrogate

    gen = torch.Generator().manual_seed(1234)
    N, R = 6, 7
    logp = (torch.randn(N, R, generator=gen) * 0.3 - 2.0).requires_grad_(True)  # (N, R)
    old = logp.detach() + torch.randn(N, R, generator=gen) * 0.25  # (N, R): ratios well past 1 +- 0.2
    ref = logp.detach() + torch.randn(N, R, generator=gen) * 0.5  # (N, R)
    token_adv = torch.randn(N, R, generator=gen)  # (N, R)
    adv = torch.randn(N, generator=gen)  # (N,)
    lengths = torch.tensor([7, 1, 4, 6, 2, 5])
    mask = torch.arange(R)[None, :] < lengths[:, None]  # (N, R)
    out = {}
    for clip_eps in (0.1, 0.2):
        out[f"clipped_surrogate/eps{clip_eps}"] = _loss_numbers(*clipped_surrogate(logp, old, token_adv, clip_eps),
                                                                logp)
        out[f"clipped_surrogate/eps{clip_eps}/mask"] = _loss_numbers(
            *clipped_surrogate(logp, old, token_adv, clip_eps, mask=mask), logp)
    flat = logp.detach()[0].clone().requires_grad_(True)  # (R,): a flat batch, as CartPole's minibatches
    out["clipped_surrogate/flat"] = _loss_numbers(*clipped_surrogate(flat, old[0], token_adv[0], 0.2), flat)
    for norm in LOSS_NORMS:
        out[f"grpo_token_loss/{norm}"] = _loss_numbers(*grpo_token_loss(logp, old, adv, mask, 0.2, norm), logp)
        out[f"grpo_token_loss/{norm}/kl"] = _loss_numbers(
            *grpo_token_loss(logp, old, adv, mask, 0.15, norm, ref_logp=ref, kl_coef=0.3, max_new_tokens=9), logp)
    return out


def cartpole_numbers() -> dict:
    """CartPole PPO (the ci preset, and a variant with minibatches, value clipping and a KL stop) and REINFORCE."""
    from course_lib.deep import ppo as ppo_module
    from course_lib.deep import reinforce as reinforce_module

    out = {}
    variants = {"ci": ppo_module.PPO_PRESETS["cartpole_ci"],
                "ci_minibatch_vclip_kl": replace(ppo_module.PPO_PRESETS["cartpole_ci"], num_minibatches=4,
                                                 clip_vloss=True, ent_coef=0.01, target_kl=0.01, update_epochs=4,
                                                 learning_rate=0.03)}
    for name, config in variants.items():
        result = ppo_module.ppo(config, seed=3, progress=False, device="cpu")
        out[f"ppo/{name}"] = {"history": _history(result.logger), "params": _params(result.agent),
                              "global_step": result.global_step, "updates_done": result.updates_done,
                              "evaluate": ppo_module.evaluate(result.agent, episodes=3).tolist()}
    config = reinforce_module.REINFORCE_PRESETS["cartpole_ci"]
    for baseline in (True, False):
        policy, history = reinforce_module.reinforce("CartPole-v1", replace(config, baseline=baseline), seed=1,
                                                     progress=False, device="cpu")
        out[f"reinforce/baseline={baseline}"] = {
            **{k: [float(x) for x in getattr(history, k)] for k in
               ("returns", "lengths", "policy_loss", "value_loss", "grad_var", "grad_var_plain")},
            "params": _params(policy), "evaluate": reinforce_module.evaluate(policy, episodes=3).tolist()}
    return out


def llm_numbers() -> dict:
    """RLHF-PPO (the ci preset, and minibatches with a KL stop) and GRPO (one and two epochs, every norm)."""
    from course_lib.llm.grpo import GRPO_PRESETS, LOSS_NORMS, grpo
    from course_lib.llm.models import tiny_model
    from course_lib.llm.ppo import RLHF_PRESETS, rlhf_ppo
    from course_lib.llm.rollout import PolicyWithValue

    out = {}
    tok = None
    rlhf = {"ci": RLHF_PRESETS["ci"],
            "minibatch_kl_stop": replace(RLHF_PRESETS["ci"], num_minibatches=2, update_epochs=3, target_kl=0.02,
                                         ent_coef=0.01, learning_rate=0.05)}
    for name, config in rlhf.items():
        lm, tok = tiny_model(seed=0, tokenizer=tok, device="cpu")
        policy = PolicyWithValue(lm)
        result = rlhf_ppo(policy, tok, PROMPTS, _lowercase_share, config, seed=5, progress=False)
        out[f"rlhf/{name}"] = {"history": _history(result.logger), "params": _params(policy),
                               "stopped_early": result.stopped_early,
                               "skipped_minibatches": result.skipped_minibatches,
                               "samples": [[p, r, float(s)] for p, r, s in result.samples]}
    grpo_configs = {"ci": GRPO_PRESETS["ci"]}
    for norm in LOSS_NORMS:
        grpo_configs[f"epochs2_kl/{norm}"] = replace(GRPO_PRESETS["ci"], update_epochs=2, kl_coef=0.05, loss_norm=norm,
                                                           learning_rate=0.05)
    for name, config in grpo_configs.items():
        lm, tok = tiny_model(seed=0, tokenizer=tok, device="cpu")
        result = grpo(lm, tok, PROMPTS, _lowercase_share, config, seed=7, progress=False)
        out[f"grpo/{name}"] = {"history": _history(result.logger), "params": _params(lm),
                               "samples": [[p, r, float(s)] for p, r, s in result.samples]}
    return out


def compute_numbers() -> dict:
    """Every number the baseline holds, as JSON-ready values."""
    torch.set_num_threads(1)
    return json.loads(json.dumps({"losses": loss_numbers(), "cartpole": cartpole_numbers(), "llm": llm_numbers()}))


def _differences(expected, actual, path="") -> list[str]:
    """Paths where two JSON values differ (exact equality of floats). A loss's ``info`` may gain diagnostics."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}/{k}: missing" for k in expected if k not in actual]
        if not path.endswith("/info"):
            out += [f"{path}/{k}: not in the baseline" for k in actual if k not in expected]
        for k in expected:
            if k in actual:
                out += _differences(expected[k], actual[k], f"{path}/{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in _differences(e, a, f"{path}[{i}]")]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


@pytest.fixture(scope="module")
def numbers():
    threads = torch.get_num_threads()
    try:
        yield compute_numbers()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def baseline():
    return json.loads(BASELINE.read_text())


@pytest.mark.parametrize("part", ["losses", "cartpole", "llm"])
def test_results_are_bit_identical_to_the_recorded_baseline(numbers, baseline, part):
    differences = _differences(baseline[part], numbers[part], part)
    assert not differences, "\n".join(differences[:20])


def test_the_comparison_catches_a_one_ulp_change(baseline):
    """The check is exact: one float moved by one unit in the last place is reported."""
    moved = json.loads(json.dumps(baseline["losses"]))
    first = next(iter(moved))
    moved[first]["loss"] = float(np.nextafter(moved[first]["loss"], np.inf))
    assert _differences(baseline["losses"], moved) == [
        f"/{first}/loss: expected {baseline['losses'][first]['loss']!r}, got {moved[first]['loss']!r}"]



# ---- the shared pieces -------------------------------------------------------------------


def test_the_three_loops_share_one_clipped_objective_and_one_guarded_step():
    import course_lib.deep.ppo as deep_ppo
    import course_lib.deep.reinforce as reinforce
    import course_lib.llm.grpo as grpo
    import course_lib.llm.ppo as llm_ppo
    from course_lib.rl import losses, optim

    assert deep_ppo.clipped_surrogate is llm_ppo.clipped_surrogate is losses.clipped_surrogate
    assert grpo.clipped_objective is losses.clipped_objective and grpo.clip_diagnostics is losses.clip_diagnostics
    for module in (deep_ppo, reinforce, llm_ppo, grpo):
        assert module.guarded_step is optim.guarded_step, module.__name__


def test_clipped_objective_equals_the_naive_formula_and_clips_only_against_the_advantage():
    from course_lib.rl import clip_diagnostics, clipped_objective

    logp = torch.log(torch.tensor([[0.5, 0.5, 0.5, 0.5]]))  # (1, 4)
    old = torch.log(torch.tensor([[0.25, 1.0, 0.25, 1.0]]))  # ratios 2, 0.5, 2, 0.5
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    term, ratio = clipped_objective(logp, old, adv, 0.2)
    torch.testing.assert_close(ratio, torch.tensor([[2.0, 0.5, 2.0, 0.5]]))
    # A > 0: the ratio's gain is capped at 1 + eps; A < 0: its loss is capped at 1 - eps; elsewhere unclipped
    torch.testing.assert_close(term, torch.tensor([[1.2, 0.5, -2.0, -0.8]]))
    info = clip_diagnostics(logp, old, ratio, 0.2, mask=torch.tensor([[True, True, True, False]]))
    assert info["clipfrac"] == 1.0 and info["ratio_mean"] == pytest.approx(1.5)
    k3 = [(r - 1) - np.log(r) for r in (2.0, 0.5, 2.0)]  # KL(old || new) from samples of old: r = new / old
    assert info["approx_kl"] == pytest.approx(float(np.mean(k3)))
    with pytest.raises(ValueError, match=r"clip_eps: expected a float in \(0, 1\), got 1.5"):
        clipped_objective(logp, old, adv, 1.5)


def _tiny_regression(seed: int = 0):
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 1)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    return net, torch.optim.Adam(net.parameters(), lr=0.1), lambda: ((net(x) - y) ** 2).mean()


def test_guarded_step_is_the_plain_clipped_step_when_all_is_finite():
    from course_lib.rl import guarded_step

    net, opt, loss_fn = _tiny_regression()
    plain, plain_opt, plain_loss_fn = _tiny_regression()
    for _ in range(3):
        norm = guarded_step(opt, loss_fn(), net.parameters(), 0.5, "step")
        plain_opt.zero_grad()
        plain_loss_fn().backward()
        plain_norm = torch.nn.utils.clip_grad_norm_(plain.parameters(), 0.5)
        plain_opt.step()
        assert torch.equal(norm, plain_norm)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), plain.parameters()))


def test_guarded_step_raises_naming_the_place_and_leaves_the_parameters_alone():
    from course_lib.rl import guarded_step

    net, opt, loss_fn = _tiny_regression()
    before = [p.detach().clone() for p in net.parameters()]
    nan = torch.tensor(float("nan"))
    with pytest.raises(FloatingPointError, match=r"^epoch 1, step 2: the loss is nan \(policy nan, value 0.5\); "
                                                 r"lower learning_rate$"):
        guarded_step(opt, loss_fn() * nan, net.parameters(), 1.0, "epoch 1, step 2",
                     parts={"policy": nan, "value": torch.tensor(0.5)})
    bad_grad = loss_fn() + torch.where(torch.tensor(False), torch.sqrt(-net.bias.sum() - 10), torch.zeros(()))
    with pytest.raises(FloatingPointError, match=r"^batch 0: the value network's gradient norm is nan at value step 3; "
                                                 r"lower lr$"):
        guarded_step(opt, bad_grad, net.parameters(), 1.0, "batch 0", norm_name="value network's gradient norm",
                     at=" at value step 3", fix="lower lr")
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), before))


def test_distinct_n_lives_in_the_evaluation_module_and_rlhf_uses_that_one():
    import course_lib.llm.ppo as llm_ppo
    from course_lib.llm.evaluation import distinct_n

    assert llm_ppo.distinct_n is distinct_n
    assert distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)  # (a b), (b a), (a b), (a b): 2 distinct
    assert distinct_n(["one"], 2) == 0.0


def test_one_evaluate_with_the_seeding_as_an_argument():
    from course_lib.deep import ppo as ppo_module
    from course_lib.deep import reinforce as reinforce_module

    torch.manual_seed(0)
    agent = ppo_module.ActorCritic(4, 2, 8)
    in_turn = ppo_module.evaluate(agent, "CartPole-v1", episodes=3, seed=0, seeding="first_reset")
    assert np.array_equal(reinforce_module.evaluate(agent, "CartPole-v1", episodes=3, seed=0), in_turn)
    side_by_side = ppo_module.evaluate(agent, "CartPole-v1", episodes=3, seed=0)
    assert side_by_side[0] == in_turn[0]  # both start from reset(seed=0); then the seedings part ways
    with pytest.raises(ValueError, match=r"seeding: expected one of \('per_episode', 'first_reset'\), got 'each'"):
        ppo_module.evaluate(agent, episodes=1, seeding="each")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_ppo_core.py --record  (writes the baseline once; never over an old one)")
    if BASELINE.exists():
        sys.exit(f"{BASELINE} exists: the baseline is recorded once, before a refactor, and never regenerated")
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    BASELINE.write_text(json.dumps(compute_numbers(), indent=1) + "\n")
    print(f"wrote {BASELINE}")
