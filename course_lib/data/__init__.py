"""Prompts, preference pairs and annotators (simulated humans, AI judges).

Layer 2 (beside ``envs``): imports only ``utils``. Filled by the Part III-IV lessons.
"""
