"""Losses that learn from preferences: the Bradley-Terry reward-model loss and DPO.

A reward model r_phi scores a prompt x with a response y. People compare two responses
rather than score one; the Bradley-Terry model (Bradley & Terry 1952) links the two:

    P(y_w preferred to y_l | x) = sigmoid(r(x, y_w) - r(x, y_l))

and the reward model maximises the log-likelihood of the observed choices (Ouyang et al.
2022, Eq. 1; Stiennon et al. 2020, Eq. 1):

    loss = -E[ log sigmoid(r(x, y_w) - r(x, y_l)) ]

Only differences of rewards matter, so a constant added to every score changes nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.utils.validation import check_float


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, margin=None):
    """-mean log sigmoid(r_chosen - r_rejected [- margin]) (Ouyang et al. 2022, Eq. 1).

    ``F.logsigmoid`` keeps it finite for large differences of either sign (the naive
    ``log(sigmoid(d))`` gives -inf below about d = -104 in float32).

    Args:
        chosen_rewards: (B,) scores of the preferred responses (with gradient).
        rejected_rewards: (B,) scores of the other responses.
        margin: None or (B,) >= 0: how much better the chosen one must be (Llama 2's margin
            from graded preferences, Touvron et al. 2023, Eq. 2).

    Returns:
        ``(loss, info)``; info: ``accuracy`` (share of pairs with r_chosen > r_rejected),
        ``margin`` (mean r_chosen - r_rejected).
    """
    if chosen_rewards.dim() != 1:
        B = chosen_rewards.shape[0] if chosen_rewards.dim() else "B"
        raise ValueError(f"chosen_rewards: expected shape (B,) = ({B},), one score per pair, "
                         f"got {tuple(chosen_rewards.shape)}")
    if rejected_rewards.shape != chosen_rewards.shape:
        raise ValueError(f"rejected_rewards: expected shape (B,) = {tuple(chosen_rewards.shape)} like chosen_rewards, "
                         f"got {tuple(rejected_rewards.shape)}")
    diff = chosen_rewards - rejected_rewards  # (B,)
    if margin is not None:
        margin = torch.as_tensor(margin, dtype=diff.dtype, device=diff.device)
        if margin.shape != diff.shape:
            raise ValueError(f"margin: expected shape {tuple(diff.shape)}, got {tuple(margin.shape)}")
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    with torch.no_grad():
        raw = chosen_rewards - rejected_rewards
        info = {"accuracy": float((raw > 0).float().mean()), "margin": float(raw.mean())}
    return loss, info


def dpo_loss(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_logp_chosen: torch.Tensor,
             ref_logp_rejected: torch.Tensor, beta: float = 0.1):
    """Direct preference optimisation (Rafailov et al. 2023, Eq. 7):

        loss = -E[ log sigmoid( beta * (log pi(y_w|x) - log pi_ref(y_w|x))
                              - beta * (log pi(y_l|x) - log pi_ref(y_l|x)) ) ]

    The Bradley-Terry loss with the implicit reward r(x, y) = beta * log pi(y|x) / pi_ref(y|x)
    in place of a reward model (their Eq. 5 solved for r). Equals ln 2 when the policy is the
    reference.

    Args:
        logp_chosen, logp_rejected: (B,) sequence log-probs log pi(y|x) of the responses under the
            policy (sums over the response tokens only), with gradient.
        ref_logp_chosen, ref_logp_rejected: (B,) the same under the frozen reference (no gradient).
        beta: > 0, the strength of the KL anchor; usually 0.05 to 0.5.

    Returns:
        ``(loss, info)``; info: ``reward_chosen``, ``reward_rejected`` (mean implicit rewards),
        ``reward_margin`` (their mean difference), ``accuracy`` (share of pairs with a positive margin).
    """
    check_float("beta", beta, "> 0")
    if logp_chosen.dim() != 1:
        B = logp_chosen.shape[0] if logp_chosen.dim() else "B"
        raise ValueError(f"logp_chosen: expected shape (B,) = ({B},), one sequence log-prob per pair, "
                         f"got {tuple(logp_chosen.shape)}")
    shape = logp_chosen.shape  # (B,)
    for name, t in (("logp_rejected", logp_rejected), ("ref_logp_chosen", ref_logp_chosen),
                    ("ref_logp_rejected", ref_logp_rejected)):
        if t.shape != shape:
            raise ValueError(f"{name}: expected shape (B,) = {tuple(shape)} like logp_chosen, got {tuple(t.shape)}")
    reward_chosen = beta * (logp_chosen - ref_logp_chosen.detach())  # (B,) implicit rewards
    reward_rejected = beta * (logp_rejected - ref_logp_rejected.detach())  # (B,)
    loss = -F.logsigmoid(reward_chosen - reward_rejected).mean()
    with torch.no_grad():
        margin = reward_chosen - reward_rejected
        info = {"reward_chosen": float(reward_chosen.mean()), "reward_rejected": float(reward_rejected.mean()),
                "reward_margin": float(margin.mean()), "accuracy": float((margin > 0).float().mean())}
    return loss, info
