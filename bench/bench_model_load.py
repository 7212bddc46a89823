"""How long does loading SmolLM2-135M-Instruct take: the kit's cache vs transformers on the GGUF?

What a user would otherwise do is load the wheel's GGUF with transformers
(``from_pretrained(folder, gguf_file=...)``), which dequantises on every load.
The kit converts once and loads safetensors from its cache. Each load runs in
a fresh process (imports timed apart) and the median of
``--repeats`` runs is printed, with the ratio.

    python bench/bench_model_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

GGUF = """
import json, time
start = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
from course_lib.llm.models import find_wheel_gguf
imports = time.perf_counter() - start
g = find_wheel_gguf()
tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
model = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name)
print(json.dumps([imports, time.perf_counter() - start - imports]))
"""

KIT = """
import json, time
start = time.perf_counter()
import torch, course_lib.llm.models
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
imports = time.perf_counter() - start
model, tok = course_lib.llm.models.load_model(device="cpu")
print(json.dumps([imports, time.perf_counter() - start - imports]))
"""

CONVERT = """
import json, sys, time
start = time.perf_counter()
from course_lib.llm.models import convert_wheel_model, find_wheel_gguf
convert_wheel_model(find_wheel_gguf(), sys.argv[1], quiet=True)
print(json.dumps(time.perf_counter() - start))
"""


def timed(code: str, *args: str):
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_runs(code: str, repeats: int) -> tuple[float, float]:
    runs = [timed(code) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per method (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        convert = timed(CONVERT, f"{tmp}/model")
    gguf_imports, gguf = median_runs(GGUF, args.repeats)
    kit_imports, kit = median_runs(KIT, args.repeats)
    print(f"one-time conversion (GGUF -> safetensors cache): {convert:6.2f} s")
    print(f"medians of {args.repeats} fresh processes:           load     imports (torch, transformers)")
    print(f"transformers from the GGUF (every load):         {gguf:6.2f} s  {gguf_imports:6.2f} s")
    print(f"course_lib load_model from the cache:            {kit:6.2f} s  {kit_imports:6.2f} s")
    print(f"ratio: the cache loads {gguf / kit:.0f}x faster than the GGUF "
          f"({(gguf + gguf_imports) / (kit + kit_imports):.1f}x with imports)")


if __name__ == "__main__":
    main()
