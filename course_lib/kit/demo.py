"""``course-kit demo``: the course's end-to-end demo, headless, into a report folder.

Today it covers the opening of the arc: load the real SmolLM2 offline, chat
with it, and look at its next-token distribution, the policy over tokens
that later lessons fine-tune with RL. Each stage shows a progress bar; the
plots and ``report.md`` are written to ``--out``.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm.auto import tqdm

QUESTIONS = [
    "What is the capital of France?",
    "Give me one tip for learning a new skill.",
    "What does a robot in a maze need to find the cheese?",
]
POLICY_PROMPT = "What is the capital of France?"
TEMPERATURES = (0.5, 1.0, 2.0)


def run_demo(out: Path, model_name: str | None = None) -> Path:
    """Run the demo; return the path of the markdown report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.llm.generation import chat_prompt, generate, next_token_distribution
    from course_lib.llm.models import load_model, resolve_model
    from course_lib.utils.device import pick_device
    from course_lib.utils.plotting import plot_token_distribution
    from course_lib.utils.profile import by_profile, get_profile
    from course_lib.utils.seeding import set_seed

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    stages = tqdm(total=3, desc="demo", unit="stage")

    stages.set_postfix_str("loading the model")
    start = time.perf_counter()
    source = resolve_model(model_name)
    model, tok = load_model(model_name)
    timings["load model"] = time.perf_counter() - start
    stages.update(1)

    stages.set_postfix_str("chatting")
    start = time.perf_counter()
    set_seed(0)
    max_new = by_profile(ci=24, cpu=64, gpu=128)
    answers = [
        generate(model, tok, [chat_prompt(tok, q)], max_new_tokens=max_new)[0]
        for q in tqdm(QUESTIONS, desc="chat", unit="question", leave=False)
    ]
    timings["chat"] = time.perf_counter() - start
    stages.update(1)

    stages.set_postfix_str("next-token distributions")
    start = time.perf_counter()
    prompt = chat_prompt(tok, POLICY_PROMPT)
    fig, axes = plt.subplots(1, len(TEMPERATURES), figsize=(5 * len(TEMPERATURES), 4.2))
    dists = {}
    for ax, temp in zip(axes, TEMPERATURES):
        dists[temp] = next_token_distribution(model, tok, prompt, k=8, temperature=temp)
        plot_token_distribution(dists[temp], title=f"temperature {temp}", ax=ax)
    fig.suptitle(f"SmolLM2's first answer token for: {POLICY_PROMPT!r}")
    fig.tight_layout()
    fig.savefig(out / "next_token_distribution.png", dpi=110)
    plt.close(fig)
    timings["next-token distribution"] = time.perf_counter() - start
    stages.update(1)
    stages.close()

    device = pick_device()
    lines = [
        "# Course kit demo",
        "",
        f"Model: SmolLM2-135M-Instruct from the {source.kind} (`{source.location}`), "
        f"on {device}, profile `{get_profile().name}`.",
        "",
        "## 1. Chat (greedy decoding)",
        "",
    ]
    for q, a in zip(QUESTIONS, answers):
        lines += [f"**Q:** {q}", "", f"**A:** {a.strip()}", ""]
    lines += [
        "## 2. The LLM as a policy over tokens",
        "",
        "The state is the prompt so far, the action is the next token, and the policy is the model's",
        "softmax over its 49,152-token vocabulary. Temperature rescales the logits: low is greedy",
        "(exploit), high spreads probability (explore).",
        "",
        "![next-token distribution](next_token_distribution.png)",
        "",
        "| temperature | top token | its probability | top-8 mass |",
        "|---|---|---|---|",
    ]
    for temp, pairs in dists.items():
        lines.append(f"| {temp} | `{pairs[0][0]!r}` | {pairs[0][1]:.1%} | {sum(p for _, p in pairs):.1%} |")
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
