"""Deep RL with torch on Gymnasium: REINFORCE, actor-critic, PPO, behaviour cloning.

Layer 4 (beside ``tabular`` and ``llm``): the PPO math comes from ``rl``. Filled by the Part II lessons.
"""
