"""Tabular RL on numpy: bandit agents, dynamic programming, Monte-Carlo, TD learning, Dyna-Q. No torch.

Layer 4 (beside ``deep`` and ``llm``): imports ``rl``, ``envs``, ``data``, ``utils``. Filled by the Part I lessons.
"""
