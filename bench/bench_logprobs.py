"""token_logprobs (gather minus row-wise log-sum-exp) vs the naive log_softmax then gather.

The naive form is what most code writes; it allocates a second (B, T, V)
tensor of log-probs, the largest tensor of an RLHF step with SmolLM2's
V = 49,152. Each method runs in a fresh process; the script prints the
median time and the growth of peak memory (max RSS) during the call, and the ratios.

    python bench/bench_logprobs.py [--batch 8] [--tokens 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, statistics, sys, time
import torch
from course_lib.rl import token_logprobs
B, T, V, repeats, method = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def naive(logits, tokens):
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
fn = naive if method == "naive" else token_logprobs
g = torch.Generator().manual_seed(0)
logits = torch.randn(B, T, V, generator=g)
tokens = torch.randint(0, V, (B, T), generator=g)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
times = []
for _ in range(repeats):
    start = time.perf_counter()
    out = fn(logits, tokens)
    times.append(time.perf_counter() - start)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": statistics.median(times), "peak_mib": grown / 1024, "check": out[0, :3].tolist()}))
"""


def run(method: str, args) -> dict:
    cmd = [sys.executable, "-c", CHILD, str(args.batch), str(args.tokens), str(args.vocab), str(args.repeats), method]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="B (default 8)")
    parser.add_argument("--tokens", type=int, default=256, help="T (default 256)")
    parser.add_argument("--vocab", type=int, default=49152, help="V (default 49152, SmolLM2's)")
    parser.add_argument("--repeats", type=int, default=5, help="calls per method (default 5)")
    args = parser.parse_args()
    naive, kit = run("naive", args), run("kit", args)
    assert all(abs(a - b) < 1e-4 for a, b in zip(naive["check"], kit["check"])), (naive["check"], kit["check"])
    size = args.batch * args.tokens * args.vocab * 4 / 2**20
    print(f"logits ({args.batch}, {args.tokens}, {args.vocab}) float32 = {size:.0f} MiB")
    print(f"naive log_softmax + gather: {naive['seconds'] * 1e3:8.1f} ms, peak memory +{naive['peak_mib']:7.1f} MiB")
    print(f"course_lib token_logprobs:  {kit['seconds'] * 1e3:8.1f} ms, peak memory +{kit['peak_mib']:7.1f} MiB")
    print(f"ratio (naive / course_lib): time {naive['seconds'] / kit['seconds']:.2f}x, "
          f"peak memory {naive['peak_mib'] / max(kit['peak_mib'], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
