"""Gymnasium environments (the maze robot, the cat-feeder bandit, token-level MDPs). numpy + gymnasium only, no torch.

Layer 2 (beside ``data``): imports only ``utils``. Filled by the Part I lessons.
"""
