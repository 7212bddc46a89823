"""A handful of demonstrations for supervised fine-tuning (lesson 9): warm, short replies to training prompts.

Lesson 9 compares two ways of reaching one goal, *replies that the simulated annotator rates
highly* (:class:`course_lib.data.annotators.SimulatedAnnotator`): imitate a few written
examples (SFT), or learn from the annotator's scores (RL). These are the examples: 32
(prompt, reply) pairs, one for each topic of the training prompts, alternating the two
phrasings ("Write one sentence about ..." for even topics, "What do you think about ..."
for odd ones). Each reply is one sentence of 10 to 20 words that answers the prompt and
finds the good side of it, the way a cheerful human demonstrator would. Written for this
course.

The prompts are plain user messages from :data:`course_lib.data.prompts.TRAIN_PROMPTS`
(format them with :func:`course_lib.llm.generation.chat_prompt`); none of them is a test
prompt, so an evaluation on :data:`~course_lib.data.prompts.TEST_PROMPTS` measures what
the demonstrations taught beyond themselves.
"""

from __future__ import annotations

from course_lib.data.prompts import TEMPLATES, TRAIN_TOPICS

_REPLIES = [
    # topic 0: "Write one sentence about my morning commute."
    "My morning commute is a calm half hour with good music, fresh air and a friendly smile from the driver.",
    # topic 1: "What do you think about rainy weekends?"
    "I love rainy weekends: a warm blanket, a good book and hot tea make them wonderfully cosy.",
    "Monday mornings are a fresh start, a happy chance to plan a great week with a good cup of coffee.",
    "Cooking dinner after work is a relaxing way to unwind, and a tasty meal makes the evening special.",
    "A delayed train gave me a quiet moment to read, and I still arrived happy and on time for dinner.",
    "Learning to play the piano is a joy; every small success feels wonderful and keeps you inspired.",
    "Moving to a new city is an exciting adventure full of new friends, great food and happy surprises.",
    "Cleaning the kitchen is oddly satisfying, and a sparkling clean kitchen is a lovely place to cook.",
    "A long queue at the post office is a good chance to chat with friendly neighbours and enjoy a smile.",
    "The first day at a new job is exciting: new colleagues, fresh ideas and a great chance to learn.",
    "Camping in the mountains was wonderful, with clear skies, fresh air and a beautiful sunrise.",
    "A broken umbrella is a small thing, and dancing home in the rain can be surprisingly fun.",
    "Waiting for a parcel filled my week with happy excitement and a lovely surprise at the door.",
    "Visiting my grandparents is always a joy, with warm hugs, great stories and delicious cake.",
    "A power cut in the evening turned into a cosy night of candles, laughter and board games.",
    "Running in the park is a great way to feel healthy, happy and full of energy.",
    "A noisy neighbour reminded me to say hello, and now we are good friends who share tea.",
    "Baking bread for the first time is a wonderful adventure, and the smell is pure happiness.",
    "A cancelled flight gave me a free evening to explore the city and enjoy a lovely dinner.",
    "Gardening in spring is a delight: bright flowers, fresh green leaves and happy bees everywhere.",
    "A group project at school taught us to work together, and we were proud of the great result.",
    "A traffic jam is a nice excuse to enjoy my favourite music and a relaxing moment of calm.",
    "Learning a new language opened a whole new world of friends, books and wonderful trips.",
    "An empty fridge is a great excuse to try a new recipe or enjoy a fun dinner out with friends.",
    "My museum visit was inspiring, full of beautiful paintings and fascinating stories.",
    "Fixing a flat bicycle tyre is easy to learn, and that small win always makes me feel proud.",
    "A thunderstorm at night was a beautiful show of light, and I felt safe and cosy in bed.",
    "Starting a book club is a lovely way to make friends and enjoy great books together.",
    "A cold cup of coffee still gave me a happy, refreshing boost on a busy and productive morning.",
    "Walking the dog in winter is a joy: crisp air, happy wagging and a warm cocoa afterwards.",
    "A job interview went really well, and I felt confident, prepared and excited about the role.",
    "A birthday party is a wonderful celebration with friends, laughter, music and delicious cake.",
]

DEMONSTRATIONS: list[tuple[str, str]] = [
    (TEMPLATES[i % 2].format(topic), reply) for i, (topic, reply) in enumerate(zip(TRAIN_TOPICS, _REPLIES))
]
"""32 (prompt, reply) pairs: the prompt is a plain user message from ``TRAIN_PROMPTS``, the reply a positive
sentence a human demonstrator might write for it."""
