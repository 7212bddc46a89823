"""Preference data from the policy's own samples, judged by an annotator (lesson 10).

The reward model must rank what the policy will produce during RLHF, so its training data
are the policy's own responses (Ouyang et al. 2022, Section 3.5; Stiennon et al. 2020):
for each prompt sample K responses, let the annotator rank them, and turn each ranking
into preference pairs (:func:`course_lib.data.annotators.pairs_from_ranking`).
"""

from __future__ import annotations

from typing import Sequence

from course_lib.data.annotators import SimulatedAnnotator, pairs_from_ranking
from course_lib.data.preferences import PreferencePair
from course_lib.llm.rollout import sample_responses


def collect_preferences(model, tokenizer, prompts: Sequence[str], annotator: SimulatedAnnotator,
                        responses_per_prompt: int = 4, rounds: int = 1, max_new_tokens: int = 24,
                        temperature: float = 1.0, keep: str = "best_vs_worst", batch_size: int = 64,
                        progress: bool = True) -> tuple[list[PreferencePair], list[list[str]]]:
    """Sample K responses per prompt per round, have the annotator rank each group, return pairs.

    Args:
        model, tokenizer: the policy (a causal LM) and its left-padding tokenizer.
        prompts: formatted prompts (:func:`~course_lib.llm.generation.chat_prompt`).
        annotator: ranks each group of K responses (:meth:`SimulatedAnnotator.rank`).
        responses_per_prompt: K >= 2 responses per prompt and round.
        rounds: how many groups per prompt (each a fresh set of K samples).
        keep: ``"best_vs_worst"`` (one pair per group) or ``"all"`` (every pair of the ranking).
        batch_size: sequences sampled at once.

    Returns:
        ``(pairs, groups)``: the preference pairs, and every group's K responses (for inspection),
        in the order prompts x rounds.
    """
    from tqdm.auto import tqdm

    for name, value, low in (("responses_per_prompt", responses_per_prompt, 2), ("rounds", rounds, 1),
                             ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"prompts: expected a non-empty list of non-empty strings, got {prompts!r:.80}")
    jobs = [p for _ in range(rounds) for p in prompts for _ in range(responses_per_prompt)]  # K copies per group
    texts: list[str] = []
    for start in tqdm(range(0, len(jobs), batch_size), desc="sampling responses", disable=not progress):
        texts += sample_responses(model, tokenizer, jobs[start:start + batch_size], max_new_tokens, temperature).texts
    pairs, groups = [], []
    for g in range(0, len(jobs), responses_per_prompt):
        group = texts[g:g + responses_per_prompt]
        groups.append(group)
        pairs += pairs_from_ranking(jobs[g], group, annotator.rank(group), keep=keep)
    return pairs, groups
