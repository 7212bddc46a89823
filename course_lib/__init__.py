"""course_lib: the library behind the course "From a maze robot to RL fine-tuning of an LLM".

Importing ``course_lib`` is instant: it imports nothing heavy (no torch, no
transformers). Import the layer you need::

    from course_lib.utils import get_profile, set_seed, pick_device
    from course_lib.llm.models import load_model

Layers, lowest first (a layer imports only layers below it; siblings never
import each other; ``tests/test_layers.py`` enforces it)::

    utils -> envs | data -> rl -> tabular | deep | llm -> harness -> checks -> grading -> kit
"""

__version__ = "0.1.0"
