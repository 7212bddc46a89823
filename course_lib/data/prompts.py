"""Short user messages for the LLM lessons (9 to 16), split by topic into training, validation and test prompts.

Everyday topics on which a reply can be warm or glum, on the topic or off it, finished or cut
(a commute, the weather, a delayed train), so every attribute of the simulated annotator's rubric
(:class:`course_lib.data.annotators.SimulatedAnnotator`) has room to move. Written for this course.
They are plain user messages: format them with :func:`course_lib.llm.generation.chat_prompt`
before sampling.

Three splits, by topic, so no topic is shared between them:

* ``TRAIN_PROMPTS`` (94 topics, 188 prompts): reward-model data and RL training;
* ``VALIDATION_PROMPTS`` (24 topics, 48 prompts): every choice a lesson makes (learning rate,
  epochs, beta, when to stop) is made on these;
* ``TEST_PROMPTS`` (32 topics, 64 prompts): only for the numbers a lesson reports, never for a choice.

Each topic appears in both phrasings of :data:`TEMPLATES`; :func:`topic_of` maps a prompt back to its
topic, which is the unit the paired bootstrap of :mod:`course_lib.llm.evaluation` resamples.
The validation split holds the 8 topics that earlier versions of the course held out (and made
choices on); the 32 test topics are new and no choice was ever made on them.
"""

from __future__ import annotations

TRAIN_TOPICS = [
    # the course's first 32 topics
    "my morning commute", "rainy weekends", "Monday mornings", "cooking dinner after work", "a delayed train",
    "learning to play the piano", "moving to a new city", "cleaning the kitchen", "a long queue at the post office",
    "the first day at a new job", "camping in the mountains", "a broken umbrella", "waiting for a parcel",
    "visiting my grandparents", "a power cut in the evening", "running in the park", "a noisy neighbour",
    "baking bread for the first time", "a cancelled flight", "gardening in spring", "a group project at school",
    "a traffic jam", "learning a new language", "an empty fridge", "a museum visit", "fixing a flat bicycle tyre",
    "a thunderstorm at night", "starting a book club", "a cold cup of coffee", "walking the dog in winter",
    "a job interview", "a birthday party",
    # 62 more
    "doing the laundry", "a flat tyre on the motorway", "a surprise visit from a friend", "learning to swim",
    "a rainy bus stop", "repotting a houseplant", "a missed alarm clock", "a school reunion", "a leaking roof",
    "a quiz night at the pub", "assembling flat-pack furniture", "a long-distance phone call",
    "a snow day", "a hospital waiting room", "the weekly shop at the supermarket", "a blister on a long walk",
    "a new pair of shoes", "a burnt cake", "a village fair", "cycling to work", "a lost library book",
    "a football match in the rain", "sharing a flat", "a broken washing machine", "a family photo album",
    "night shifts", "a wedding speech", "a late-night snack", "a heatwave in the city", "a new puppy",
    "writing a cover letter", "an online meeting that froze", "a ferry crossing", "the first snowfall",
    "a jammed printer", "a weekend at the seaside", "a charity run", "fixing a dripping tap", "a garden shed",
    "a road trip with friends", "a spelling test", "a parking ticket", "making soup", "a crowded beach",
    "a choir rehearsal", "an old vinyl record", "a sleepless night", "packing for a holiday",
    "a neighbour's barbecue", "a flat battery", "tidying a messy desk", "a first driving lesson",
    "a bakery in the morning", "an autumn walk", "a lost glove", "a kite on a windy day", "a power nap",
    "waiting for exam results", "a farmers' market", "a long hike", "a chess game with my brother",
    "a street musician",
]

VALIDATION_TOPICS = [
    # the 8 topics earlier versions of the course held out (choices were made on them)
    "losing my keys", "a picnic by the lake", "a slow internet connection", "the last day of holidays",
    "painting my room", "a dentist appointment", "a crowded bus", "my old laptop",
    # 16 more
    "a rainy school run", "a fire drill at work", "learning to knit", "a power shower", "a second-hand bookshop",
    "a cracked phone screen", "a train station at night", "a pottery class", "a window seat on a plane",
    "a garden full of weeds", "a homemade pizza", "a lost cat poster", "a morning swim", "a visit to the vet",
    "an allotment", "a broken zip",
]

TEST_TOPICS = [
    "a village pond", "a tennis lesson", "a foggy morning", "a new haircut", "a sourdough starter",
    "a queue for concert tickets", "a flooded street", "a paper aeroplane", "a camping stove",
    "a job promotion", "a lost passport", "a street market", "a snowman", "an old friend's letter",
    "a tram ride", "a hot bath after work", "a rusty bicycle", "a bird feeder", "a village library",
    "a late pizza delivery", "a mountain cabin", "a birthday cake that collapsed", "a dance class",
    "a busy airport", "a new neighbour", "a vegetable patch", "a stuck lift", "a winter market",
    "a science fair", "a boat trip", "a lazy Sunday", "an evening stroll",
]

TEMPLATES = [
    "Write one sentence about {}.",
    "What do you think about {}?",
]


def _prompts(topics: list[str]) -> list[str]:
    return [template.format(topic) for topic in topics for template in TEMPLATES]


TRAIN_PROMPTS: list[str] = _prompts(TRAIN_TOPICS)
"""188 training prompts: 94 topics x 2 phrasings, topic by topic."""

VALIDATION_PROMPTS: list[str] = _prompts(VALIDATION_TOPICS)
"""48 validation prompts: 24 topics x 2 phrasings; every choice a lesson makes is made on these."""

TEST_PROMPTS: list[str] = _prompts(TEST_TOPICS)
"""64 test prompts: 32 topics x 2 phrasings, for reported numbers only."""

_TOPIC_OF = {template.format(t): t for t in TRAIN_TOPICS + VALIDATION_TOPICS + TEST_TOPICS for template in TEMPLATES}


def topic_of(prompt: str) -> str:
    """The course topic of one of its prompts, plain or chat-formatted (the last user message is read);
    any other prompt is its own topic."""
    from course_lib.data.annotators import user_message

    message = user_message(prompt)
    return _TOPIC_OF.get(message, message)
