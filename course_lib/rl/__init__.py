"""Pure RL math on tensors: log-probs, masked statistics, returns and advantages, PPO's losses, KL estimators,
the guarded optimiser step every training loop takes and the guard that stops a diverging run.

Written once and called by both the control-world algorithms (``deep``) and
the LLM algorithms (``llm``): PPO for an LLM *is* PPO on a token-level MDP.
Time is the last axis: (B, T) for sequences of env steps or tokens.
"""

from course_lib.rl.advantages import discounted_returns, explained_variance, gae, group_advantages, td_errors
from course_lib.rl.kl import kl_k1, kl_k2, kl_k3
from course_lib.rl.logprobs import token_logprobs
from course_lib.rl.losses import clip_diagnostics, clipped_objective, clipped_surrogate, entropy_from_logits, value_loss
from course_lib.rl.masked import masked_mean, masked_sum, masked_var, masked_whiten, normalize
from course_lib.rl.optim import DivergenceError, DivergenceGuard, guarded_step
from course_lib.rl.preference import bradley_terry_loss, dpo_loss

__all__ = [
    "DivergenceError", "DivergenceGuard", "bradley_terry_loss", "clip_diagnostics", "clipped_objective", "clipped_surrogate", "discounted_returns",
    "dpo_loss", "entropy_from_logits", "explained_variance", "gae", "group_advantages", "guarded_step", "kl_k1",
    "kl_k2", "kl_k3", "masked_mean", "masked_sum", "masked_var", "masked_whiten", "normalize", "td_errors",
    "token_logprobs", "value_loss",
]
