"""Short user messages for the LLM lessons (9 to 15), split into training and held-out prompts.

Everyday topics on which a reply can lean positive or negative (a commute, the weather, a
delayed train), so the simulated annotator's sentiment score has room to move in both
directions. Written for this course. They are plain user messages: format them with
:func:`course_lib.llm.generation.chat_prompt` before sampling.

``TRAIN_PROMPTS`` (64) feed reward-model data and RL training; ``HELD_OUT_PROMPTS`` (16) are
never trained on and measure what training did.
"""

from __future__ import annotations

TOPICS = [
    "my morning commute", "rainy weekends", "Monday mornings", "cooking dinner after work", "a delayed train",
    "learning to play the piano", "moving to a new city", "cleaning the kitchen", "a long queue at the post office",
    "the first day at a new job", "camping in the mountains", "a broken umbrella", "waiting for a parcel",
    "visiting my grandparents", "a power cut in the evening", "running in the park", "a noisy neighbour",
    "baking bread for the first time", "a cancelled flight", "gardening in spring", "a group project at school",
    "a traffic jam", "learning a new language", "an empty fridge", "a museum visit", "fixing a flat bicycle tyre",
    "a thunderstorm at night", "starting a book club", "a cold cup of coffee", "walking the dog in winter",
    "a job interview", "a birthday party", "losing my keys", "a picnic by the lake", "a slow internet connection",
    "the last day of holidays", "painting my room", "a dentist appointment", "a crowded bus", "my old laptop",
]

TEMPLATES = [
    "Write one sentence about {}.",
    "What do you think about {}?",
]


def _prompts(topics: list[str]) -> list[str]:
    return [template.format(topic) for topic in topics for template in TEMPLATES]


TRAIN_PROMPTS: list[str] = _prompts(TOPICS[:32])
"""64 training prompts: 32 topics x 2 phrasings."""

HELD_OUT_PROMPTS: list[str] = _prompts(TOPICS[32:])
"""16 held-out prompts: 8 topics never seen in training x 2 phrasings."""
