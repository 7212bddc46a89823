"""The LLM as a policy: model loading, chat formatting, generation, log-probs.

Submodules import torch and transformers; import them explicitly::

    from course_lib.llm.models import load_model, tiny_model
    from course_lib.llm.generation import generate, completion_logprobs
"""
