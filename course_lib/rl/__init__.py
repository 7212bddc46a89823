"""Pure RL math on arrays and tensors: log-probs, returns, advantages, losses, KL.

Written once and called by both the control-world algorithms (``deep``) and
the LLM algorithms (``llm``): PPO for an LLM *is* PPO on a token-level MDP.
"""

from course_lib.rl.logprobs import masked_sum, token_logprobs

__all__ = ["masked_sum", "token_logprobs"]
