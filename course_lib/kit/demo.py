"""``course-kit demo``: the course's end-to-end demo, headless, into a report folder.

One run walks the arc of the course, each stage with a progress bar, a plot and the number that
shows it learned (all measured in this run; nothing is stored or hand-picked):

1. **The LLM** (lesson 0): load SmolLM2-135M-Instruct offline, chat with it, and plot its
   next-token distribution, the policy over tokens that later stages fine-tune.
2. **The maze** (lessons 1-4): value iteration on the maze's exact model gives the optimal
   return; Q-learning learns from experience alone, and its greedy policy's return is compared
   with that optimum. Plot: value heatmaps with the greedy arrows of both.
3. **PPO on CartPole** (lesson 7): one seed with lesson 7's preset and stopping rule; greedy
   return before and after, against lesson 7's solve threshold. Plot: the learning curve.
4. **The reward model** (lesson 10): lesson 10's saved reward model (or, if the cache lacks
   it, built the same way and saved); its accuracy on lesson 10's held-out preference pairs.
   Plot: the held-out score margins.
5. **Feedback: best-of-n against the reward model** (lessons 10 and 15): for each test prompt
   the base model samples n = 8 replies and the reward model keeps its favourite; nothing is
   trained. The simulated annotator is the gold judge: the gain is the pick's gold minus the mean
   gold of the same 8 samples, a :func:`~course_lib.llm.evaluation.paired_bootstrap` interval over
   the 32 test topics (one sampling seed, no training seed). Plot: gold and reward-model score of
   best-of-k for k = 1, 2, 4, 8 (with KL(best-of-k || base) <= log k - (k - 1)/k), and per topic.

Why best-of-n. The protocol, written before the runs: three candidates from the base model,
training seed 0, each measured on the 48 VALIDATION prompts (24 topics; the test prompts were used only
by the chosen stage): (a) the earlier stage, PPO against the reward model, 12 steps, KL 0.1; (b) DPO
with lesson 12's preset on the first 160 shipped training pairs; (c) best-of-8 against the reward model.
(a) and (b) were evaluated with :func:`course_lib.llm.protocols.evaluate` (2 replies per prompt, 24 tokens,
sampling seed 2024) against the start; (c) on 8 samples per prompt (24 tokens, seed 2024) against their
mean. Rule: the highest lower bound of the gold-gain interval among the candidates that fit the time budget.
Measured (cpu profile, one thread, CPU seconds because other jobs kept the 2 cores' load at 7 to 9):
(a) +0.108 [+0.071, +0.144], about 250 CPU s for 64 test prompts (KL 14.3 nats, EOS rate 0.77);
(b) +0.009 [-0.015, +0.036] (not shown), about 220 CPU s; (c) +0.114 [+0.080, +0.148], about 125 CPU s.
So (c): the highest lower bound and the least time.

Sizes follow the profile (``COURSE_PROFILE``): ``ci`` runs every stage in seconds (tiny budgets,
the numbers then show that the pipeline works, not that it learned), ``cpu`` is the real demo.
Time (README, "The demo", has the measured runs): with lesson 10's reward model in the cache the
stages are short; without it, stage 4 first trains the reward model as lesson 10 does (595 CPU seconds
on one thread, measured alone), which is most of the demo; the report says which happened and how
long each part took. The plots (PNG) and ``report.md`` are written to ``--out``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from course_lib.utils.validation import check_float, check_int

if TYPE_CHECKING:
    from course_lib.llm.overoptimisation import BestOfNSamples

QUESTIONS = [
    "What is the capital of France?",
    "Give me one tip for learning a new skill.",
    "What does a robot in a maze need to find the cheese?",
]
POLICY_PROMPT = "What is the capital of France?"
TEMPERATURES = (0.5, 1.0, 2.0)
SOLVED = 475.0
"""CartPole-v1's solve threshold, as lesson 7 uses it: mean greedy return >= 475."""
SAMPLES_SHOWN = 3
"""Test prompts whose replies the report shows: a sample of the base model and best-of-n's pick."""


# ---- small helpers -------------------------------------------------------------------------


def greedy_rollout(env, Q: np.ndarray, gamma: float, max_steps: int = 500) -> tuple[float, float, int, bool]:
    """Play one episode with the greedy policy of a Q table (first-index tie-break) from a fresh reset.

    Args:
        env: a discrete-state Gymnasium env (e.g. ``course/MazeRobot-v0``).
        Q: (S, A) action values.
        gamma: discount in [0, 1] for the discounted return.
        max_steps: stop after this many steps even if the env's own time limit is longer.

    Returns:
        ``(discounted_return, undiscounted_return, steps, terminated)``: G_0 = sum_t gamma^t r_{t+1}, the plain
        sum of rewards, the steps taken, and whether the episode reached a terminal state.
    """
    Q = np.asarray(Q, dtype=float)
    if Q.ndim != 2 or Q.shape[0] != env.observation_space.n or Q.shape[1] != env.action_space.n:
        raise ValueError(f"Q: expected shape ({env.observation_space.n}, {env.action_space.n}), got {Q.shape}")
    check_float("gamma", gamma, "[0, 1]")
    check_int("max_steps", max_steps, 1)
    s, _ = env.reset()
    discounted, total, weight = 0.0, 0.0, 1.0
    for step in range(1, max_steps + 1):
        s, r, terminated, truncated, _ = env.step(int(np.argmax(Q[s])))
        discounted += weight * r
        total += r
        weight *= gamma
        if terminated or truncated:
            return discounted, total, step, bool(terminated)
    return discounted, total, max_steps, False


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _quote(text: str, limit: int = 160) -> str:
    """One line of model text for a markdown table or quote (no newlines or pipes)."""
    flat = " ".join(text.split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


# ---- stage 1: the LLM ------------------------------------------------------------------------


@dataclass
class LLMStage:
    answers: list[str]
    dists: dict[float, list[tuple[str, float]]]


def llm_stage(model, tok, out: Path) -> LLMStage:
    """Chat greedily with the model, and plot its next-token distribution at three temperatures."""
    import matplotlib.pyplot as plt

    from course_lib.llm.generation import chat_prompt, generate, next_token_distribution
    from course_lib.utils.plotting import plot_token_distribution
    from course_lib.utils.profile import by_profile
    from course_lib.utils.seeding import set_seed

    set_seed(0)
    max_new = by_profile(ci=24, cpu=64, gpu=128)
    answers = [generate(model, tok, [chat_prompt(tok, q)], max_new_tokens=max_new)[0]
               for q in tqdm(QUESTIONS, desc="chat", unit="question", leave=False)]
    prompt = chat_prompt(tok, POLICY_PROMPT)
    fig, axes = plt.subplots(1, len(TEMPERATURES), figsize=(5 * len(TEMPERATURES), 4.2))
    dists = {}
    for ax, temp in zip(axes, TEMPERATURES):
        dists[temp] = next_token_distribution(model, tok, prompt, k=8, temperature=temp)
        plot_token_distribution(dists[temp], title=f"temperature {temp}", ax=ax)
    fig.suptitle(f"SmolLM2's first answer token for: {POLICY_PROMPT!r}")
    fig.tight_layout()
    _save(fig, out / "next_token_distribution.png")
    return LLMStage(answers, dists)


# ---- stage 2: the maze -----------------------------------------------------------------------


@dataclass
class MazeStage:
    gamma: float
    episodes: int
    sweeps: int
    optimal_return: float
    """V*(start) from value iteration on the exact model."""
    optimal_steps: int
    learned_return: float
    """Discounted return of Q-learning's greedy policy, rolled out in the env."""
    learned_steps: int
    learned_terminated: bool
    first_returns: float
    """Mean undiscounted return of the first 10 training episodes (epsilon-greedy)."""
    last_returns: float

    @property
    def matches(self) -> bool:
        return self.learned_terminated and abs(self.learned_return - self.optimal_return) < 1e-6


def maze_stage(out: Path, seed: int = 0) -> MazeStage:
    """Value iteration on the exact model vs Q-learning from experience on ``course/MazeRobot-v0``."""
    import gymnasium as gym
    import matplotlib.pyplot as plt

    import course_lib.envs  # noqa: F401  (registers course/MazeRobot-v0)
    from course_lib.tabular.dp import value_iteration
    from course_lib.tabular.td import TD_PRESETS, q_learning
    from course_lib.utils.plotting import plot_value_heatmap

    env = gym.make("course/MazeRobot-v0")
    model = env.unwrapped.model
    config = TD_PRESETS["small_maze"]  # lesson 4's preset for this maze
    vi = value_iteration(model, gamma=config.gamma)
    _, _, optimal_steps, _ = greedy_rollout(env, vi.Q, config.gamma)
    Q, history = q_learning(env, config, seed=seed, progress=True)
    learned, _, steps, terminated = greedy_rollout(env, Q, config.gamma)

    grid = env.unwrapped.grid
    walls, terminals = np.isin(grid, ["#", "X"]), np.isin(grid, ["C", "T"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    plot_value_heatmap(vi.V, walls, vi.policy, terminals, ax=axes[0],
                       title=f"value iteration: V* and its greedy policy ({len(vi.deltas)} sweeps)")
    plot_value_heatmap(Q.max(axis=1), walls, Q.argmax(axis=1), terminals, ax=axes[1],
                       title=f"Q-learning: max_a Q and its greedy policy ({config.episodes} episodes)")
    _save(fig, out / "maze_values.png")
    return MazeStage(config.gamma, config.episodes, len(vi.deltas), float(vi.V[model.start_state]), optimal_steps,
                     learned, steps, terminated, float(np.mean(history.returns[:10])),
                     float(np.mean(history.returns[-10:])))


# ---- stage 3: PPO on CartPole ----------------------------------------------------------------


@dataclass
class PPOStage:
    preset: str
    every: int
    """Environment steps between greedy evaluations."""
    before: float
    """Mean greedy return of the untrained agent."""
    after: float
    episodes: int
    env_steps: int
    updates: int
    seconds: float
    stopped_solved: bool
    evaluations: dict[str, list] = field(default_factory=dict)

    @property
    def solved(self) -> bool:
        return self.after >= SOLVED


def ppo_stage(out: Path, seed: int = 0) -> PPOStage:
    """Lesson 7's PPO run: its preset for the profile, greedy evaluations every few thousand steps, stop when solved."""
    import matplotlib.pyplot as plt

    from course_lib.deep.imitation import StopWhenSolved
    from course_lib.deep.ppo import PPO_PRESETS, ActorCritic, evaluate, ppo
    from course_lib.utils.plotting import smooth
    from course_lib.utils.profile import by_profile
    from course_lib.utils.seeding import set_seed

    preset = by_profile(ci="cartpole_ci", cpu="cartpole_fast")
    config = PPO_PRESETS[preset]
    every, episodes = by_profile(ci=64, cpu=5_000), by_profile(ci=2, cpu=10)  # lesson 7's EVAL_EVERY, EVAL_EPISODES
    set_seed(seed)
    agent = ActorCritic(4, 2, config.hidden)  # CartPole: 4 observations, 2 actions
    before = float(evaluate(agent, config.env_id, episodes=episodes).mean())
    stop = StopWhenSolved(config.env_id, SOLVED, every, episodes, measure="return")
    result = ppo(config, seed=seed, agent=agent, callback=stop, live=False)
    after = float(evaluate(result.agent, config.env_id, episodes=episodes).mean())
    record = {"step": [0, *stop.steps], "mean": [before, *stop.scores]}
    if record["step"][-1] != result.global_step:
        record["step"].append(result.global_step)
        record["mean"].append(after)

    fig, ax = plt.subplots(figsize=(8, 4))
    if "charts/episodic_return" in result.logger.names():
        steps, returns = result.logger.as_arrays("charts/episodic_return")
        ax.plot(steps, returns, color="tab:blue", alpha=0.3, label="training episodes")
        ax.plot(steps, smooth(returns, 10), color="tab:blue", label="training episodes (mean of 10)")
    ax.plot(record["step"], record["mean"], "o-", color="tab:orange", label=f"greedy, mean of {episodes} episodes")
    ax.axhline(SOLVED, color="black", linestyle="--", linewidth=1, label=f"solved: {SOLVED:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return per episode")
    ax.set_title(f"PPO on {config.env_id} (preset {preset!r}, seed {seed})")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    _save(fig, out / "ppo_cartpole.png")
    return PPOStage(preset, every, before, after, episodes, result.global_step, result.updates_done, result.seconds,
                    result.stopped_by_callback, record)


# ---- stage 4: the reward model ---------------------------------------------------------------


@dataclass
class RewardStage:
    rm: object
    path: Path
    found: bool
    """True: lesson 10's file was loaded; False: built now and saved."""
    prepare_seconds: float
    pairs_source: str
    """Where the preference pairs came from (:attr:`~course_lib.llm.feedback.PreferenceData.source`)."""
    pairs_seconds: float
    n_train: int
    accuracy: float
    accuracy_se: float
    ceiling: float
    """Accuracy of the annotator's own noise-free score on the same pairs."""


def reward_stage(model, tok, out: Path, seed: int = 0) -> RewardStage:
    """Lesson 10's reward model (loaded, or built and saved) and its accuracy on lesson 10's held-out pairs."""
    import matplotlib.pyplot as plt

    from course_lib.data.annotators import SimulatedAnnotator
    from course_lib.llm.feedback import course_preferences, prepare_reward_model, reward_model_path
    from course_lib.llm.reward_model import REWARD_PRESETS, score_pairs
    from course_lib.utils.profile import get_profile

    profile = get_profile().name
    path = reward_model_path(model)
    found = path.is_file()
    t0 = time.perf_counter()
    rm = prepare_reward_model(model, tok, seed=seed)
    prepare_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = course_preferences(model, tok, seed=seed)  # the pairs lesson 10 reads (shipped, cached or just sampled)
    train, held = data.train, data.test
    pairs_seconds = time.perf_counter() - t0
    r_chosen, r_rejected = score_pairs(rm, tok, held, max_length=REWARD_PRESETS[profile].max_length)  # (n,) each
    correct = (r_chosen > r_rejected).float().cpu().numpy()  # (n,) a tie counts as wrong, as in lesson 10
    accuracy = float(correct.mean())
    se = math.sqrt(accuracy * (1 - accuracy) / len(held))
    annotator = SimulatedAnnotator(temperature=0)  # the noise-free rubric: its score as a reward model
    held_prompts = [p.prompt for p in held]
    ceiling = float(np.mean(annotator.scores(held_prompts, [p.chosen for p in held])
                            > annotator.scores(held_prompts, [p.rejected for p in held])))

    margins = (r_chosen - r_rejected).cpu().numpy()  # (n,)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(margins, bins=20, color="tab:green")
    ax.axvline(0, color="black", linewidth=1)
    ax.set_xlabel("r(x, chosen) - r(x, rejected)")
    ax.set_ylabel("held-out pairs")
    ax.set_title(f"reward model on {len(held)} held-out pairs: right of 0 = ordered as the annotator chose "
                 f"({accuracy:.1%})", fontsize=10)
    _save(fig, out / "reward_model.png")
    return RewardStage(rm, path, found, prepare_seconds, data.source, pairs_seconds, len(train), accuracy, se,
                       ceiling)


# ---- stage 5: the feedback stage, best-of-n against the reward model -------------------------


def feedback_settings() -> dict:
    """The feedback stage's settings per profile, fixed before its test run (best-of-n was chosen on the validation
    prompts, see the module docstring): ``n`` samples per prompt, ``max_new_tokens`` per sample, the sampling
    ``seed``, the test ``prompts`` (ci: the first 4)."""
    from course_lib.data.prompts import TEST_PROMPTS
    from course_lib.utils.profile import by_profile

    return {"n": by_profile(ci=4, cpu=8, gpu=8), "max_new_tokens": by_profile(ci=8, cpu=24, gpu=24), "seed": 2024,
            "prompts": by_profile(ci=TEST_PROMPTS[:4], cpu=TEST_PROMPTS, gpu=TEST_PROMPTS)}


@dataclass
class FeedbackStage:
    samples: BestOfNSamples
    """The n test samples per prompt with their reward-model and gold scores."""
    ks: np.ndarray
    """(M,) k = 1, 2, 4, ..., n: best-of-k for each, from the same n samples."""
    gold_by_k: np.ndarray
    """(M,) the mean over test prompts of best-of-k's expected gold (k = 1: the base model's mean)."""
    proxy_by_k: np.ndarray
    """(M,) the same for the reward model's score."""
    kl_by_k: np.ndarray
    """(M,) KL(best-of-k || base) = log k - (k - 1) / k nats (an upper bound when the reward model ties)."""
    gain: object
    """:class:`~course_lib.llm.evaluation.Interval`: gold of the pick minus the mean gold of the n samples, per
    prompt, bootstrapped over test topics."""
    proxy_gain: object
    """The same interval for the reward model's score."""
    base: dict[str, float]
    """The base model's means over all n samples: ``gold``, ``gold_se``, ``proxy``, ``proxy_se``, ``eos_rate``."""
    best: dict[str, float]
    """The same for the picked replies."""
    shown: list[tuple[str, str, float, str, float]]
    """(prompt, the first sample, its gold, the pick, its gold) for the first few test prompts."""


def feedback_stage(model, tok, rm, out: Path) -> FeedbackStage:
    """Best-of-n against the reward model on the test prompts: n samples per prompt from the base model, the reward
    model picks one; the gold judge (the annotator, never trained on) scores both."""
    import matplotlib.pyplot as plt

    from course_lib.data.annotators import SimulatedAnnotator
    from course_lib.llm.evaluation import clustered_se, paired_bootstrap
    from course_lib.llm.generation import chat_prompt
    from course_lib.llm.overoptimisation import best_of_n_curve, best_of_n_samples
    from course_lib.llm.protocols import reward_fn

    settings = feedback_settings()
    annotator = SimulatedAnnotator(temperature=0)  # the gold judge: the rubric's gold score in [0, 1]
    rm_score = reward_fn(rm, tok)  # the proxy: the reward model's score of each (prompt, reply)

    prompts = [chat_prompt(tok, p) for p in settings["prompts"]]
    n = settings["n"]
    samples = best_of_n_samples(model, tok, prompts, n, rm_score, annotator.scores,
                                max_new_tokens=settings["max_new_tokens"], seed=settings["seed"], progress=True)
    rows = np.arange(len(prompts))
    pick = samples.picked()  # (P,)
    topics = samples.topics  # (P,)
    ks = np.array([2 ** j for j in range(n.bit_length()) if 2 ** j <= n])  # (M,) 1, 2, 4, ..., n
    curve = best_of_n_curve(samples.proxy, samples.gold, ks)  # (P, M) expected gold and proxy of best-of-k
    base_gold, best_gold = samples.gold.mean(axis=1), samples.gold[rows, pick]  # (P,) each
    base_proxy, best_proxy = samples.proxy.mean(axis=1), samples.proxy[rows, pick]  # (P,) each

    def summary(gold, proxy, eos) -> dict[str, float]:
        return {"gold": float(gold.mean()), "gold_se": clustered_se(gold, topics), "proxy": float(proxy.mean()),
                "proxy_se": clustered_se(proxy, topics), "eos_rate": float(np.mean(eos))}

    shown = [(prompts[i], samples.texts[i][0], float(samples.gold[i, 0]), samples.texts[i][pick[i]],
              float(best_gold[i])) for i in range(min(SAMPLES_SHOWN, len(prompts)))]

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    ax.plot(ks, curve.gold.mean(axis=0), "o-", color="tab:orange", label="gold (annotator, left axis)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [f"{k}\nKL {kl:.2f}" for k, kl in zip(ks, curve.kl)])
    ax.set_xlabel("n (and KL(best-of-n || base) in nats)")
    ax.set_ylabel("gold score of the pick", color="tab:orange")
    ax.set_title(f"best-of-n from the same {n} samples per test prompt (means over prompts)", fontsize=10)
    ax.grid(alpha=0.3)
    right = ax.twinx()  # the reward model's score has its own scale
    right.plot(ks, curve.proxy.mean(axis=0), "s--", color="tab:green", label="reward model (right axis)")
    right.set_ylabel("reward-model score of the pick", color="tab:green")
    ax.legend(handles=ax.get_lines() + right.get_lines(), fontsize=8, loc="upper left")
    ax = axes[1]
    names = sorted(set(topics))
    by_topic = np.array([[base_gold[[t == name for t in topics]].mean(), best_gold[[t == name for t in topics]].mean()]
                         for name in names])  # (G, 2)
    ax.scatter(by_topic[:, 0], by_topic[:, 1], color="tab:orange")
    low, high = float(by_topic.min()) - 0.02, float(by_topic.max()) + 0.02
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    ax.set_xlabel(f"base model: mean gold of its {n} samples")
    ax.set_ylabel(f"best-of-{n}: gold of the pick")
    ax.set_title(f"per test topic ({len(names)}): above the line = the pick scored higher", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, out / "best_of_n.png")
    gain = paired_bootstrap(best_gold, base_gold, topics)  # topics resampled; one sampling seed, nothing trained
    proxy_gain = paired_bootstrap(best_proxy, base_proxy, topics)
    return FeedbackStage(samples, ks, curve.gold.mean(axis=0), curve.proxy.mean(axis=0), curve.kl, gain, proxy_gain,
                         summary(base_gold, base_proxy, samples.ended),
                         summary(best_gold, best_proxy, samples.ended[rows, pick]), shown)


# ---- the report ------------------------------------------------------------------------------


def _report(source, device, profile: str, llm: LLMStage, maze: MazeStage, ppo: PPOStage, rms: RewardStage,
            feedback: FeedbackStage, timings: dict[str, float]) -> list[str]:
    from course_lib.llm.judge import user_message

    lines = [
        "# Course kit demo",
        "",
        f"Model: SmolLM2-135M-Instruct from the {source.kind} (`{source.location}`), on {device}, "
        f"profile `{profile}`." + (" The `ci` profile runs tiny budgets: its numbers show that every stage "
                                   "runs, not that it learns." if profile == "ci" else ""),
        "",
        "## 1. Chat (greedy decoding)",
        "",
    ]
    for q, a in zip(QUESTIONS, llm.answers):
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
    for temp, pairs in llm.dists.items():
        lines.append(f"| {temp} | `{pairs[0][0]!r}` | {pairs[0][1]:.1%} | {sum(p for _, p in pairs):.1%} |")

    rm_origin = ("loaded lesson 10's saved file" if rms.found else
                 "NOT in the cache: built now (preference pairs, then Bradley-Terry training, as lesson 10 does) "
                 "and saved to")
    pairs_origin = rms.pairs_source
    verdict = ("equals the exact optimum" if maze.matches else
               "does NOT equal the exact optimum" if maze.learned_terminated else
               "does NOT reach the cheese, so it misses the exact optimum")
    lines += [
        "",
        "## 3. The maze robot: exact planning vs learning from experience (lessons 1-4)",
        "",
        f"Value iteration uses the maze's exact model; Q-learning only sees transitions. After "
        f"{maze.episodes} Q-learning episodes its greedy policy's return {verdict} (gamma = {maze.gamma}).",
        "",
        "| policy | discounted return from the start | steps to the cheese |",
        "|---|---|---|",
        f"| exact optimum V*(start), value iteration ({maze.sweeps} sweeps) | {maze.optimal_return:.4f} | "
        f"{maze.optimal_steps} |",
        f"| Q-learning's greedy policy, rolled out | {maze.learned_return:.4f} | "
        f"{maze.learned_steps if maze.learned_terminated else 'not reached'} |",
        "",
        f"While learning (epsilon-greedy, undiscounted): mean return of the first 10 episodes "
        f"{maze.first_returns:.1f}, of the last 10 {maze.last_returns:.1f}.",
        "",
        "![maze values](maze_values.png)",
        "",
        "## 4. PPO on CartPole (lesson 7)",
        "",
        f"Preset `{ppo.preset}`, seed 0, a greedy evaluation every {ppo.every:,} environment steps, stop once "
        f"solved (lesson 7's rule). {ppo.updates} updates, {ppo.env_steps:,} environment steps, {ppo.seconds:.1f} s of "
        f"training"
        f"{', stopped: solved' if ppo.stopped_solved else ', budget used up'}.",
        "",
        "| agent | mean greedy return |",
        "|---|---|",
        f"| before training | {ppo.before:.1f} |",
        f"| after training | {ppo.after:.1f} |",
        "",
        f"Mean greedy return over {ppo.episodes} episodes after training: {ppo.after:.1f}; lesson 7's solve "
        f"threshold ({SOLVED:g}): {'reached' if ppo.solved else 'NOT reached'}.",
        "",
        "![PPO learning curve](ppo_cartpole.png)",
        "",
        "## 5. The reward model (lesson 10)",
        "",
        f"Reward model: {rm_origin} `<cache>/{rms.path.parent.name}/{rms.path.name}` in {rms.prepare_seconds:.1f} s. "
        f"Preference pairs: {pairs_origin} in {rms.pairs_seconds:.1f} s ({rms.n_train} training pairs).",
        "",
        f"Held-out pairwise accuracy: {rms.accuracy:.3f} ± {rms.accuracy_se:.3f} (one standard error) on "
        f"lesson 10's held-out pairs; chance is 0.5, and the annotator's own noise-free score reaches "
        f"{rms.ceiling:.3f} on the same pairs (the labels come from that score with noise, so a perfect reward "
        f"model would score about this).",
        "",
        "![reward model margins](reward_model.png)",
        "",
    ]

    fb, n = feedback, feedback.samples.n
    settings = feedback_settings()
    groups = len(set(fb.samples.topics))
    b, a = fb.base, fb.best
    lines += [
        f"## 6. Feedback: best-of-{n} against the reward model (lessons 10 and 15)",
        "",
        f"For each of the {len(fb.samples.prompts)} test prompts ({groups} topics), SmolLM2 samples {n} replies "
        f"(temperature 1, at most {settings['max_new_tokens']} tokens, sampling seed {settings['seed']}) and the "
        f"reward model of section 5 keeps the one it scores highest; nothing is trained "
        f"({fb.samples.seconds:.1f} s for sampling and scoring). The simulated annotator is the gold judge, never "
        f"trained on. The base model's gold on a prompt is the mean over its {n} samples (what one sample scores "
        f"on average); best-of-{n}'s is the gold of the pick. Both come from the same replies, so the gain is "
        f"paired prompt by prompt. KL(best-of-{n} || base) is at most log n - (n - 1)/n = {fb.kl_by_k[-1]:.2f} nats. "
        f"This stage replaced a short PPO run after a comparison on the validation prompts (the README's "
        f"\"The demo\" section has it).",
        "",
        "| replies | gold score (± SE) | reward-model score (± SE) | ended with EOS |",
        "|---|---|---|---|",
        f"| base model: one sample (the mean of the {n}) | {b['gold']:.3f} ± {b['gold_se']:.3f} | "
        f"{b['proxy']:+.3f} ± {b['proxy_se']:.3f} | {b['eos_rate']:.2f} |",
        f"| best-of-{n}: the reward model's pick | {a['gold']:.3f} ± {a['gold_se']:.3f} | "
        f"{a['proxy']:+.3f} ± {a['proxy_se']:.3f} | {a['eos_rate']:.2f} |",
        "",
        f"Test gold gain of best-of-{n} over the base model: {fb.gain} (95% paired bootstrap over the {groups} test "
        f"topics): **{fb.gain.verdict()}**. Reward-model score gain: {fb.proxy_gain}. One sampling seed and no "
        f"training seed: the interval covers which topics were asked, not another draw of the samples.",
        "",
        "| n | " + " | ".join(str(k) for k in fb.ks) + " |",
        "|---|" + "---|" * len(fb.ks),
        "| expected gold of best-of-n | " + " | ".join(f"{g:.3f}" for g in fb.gold_by_k) + " |",
        "| KL bound (nats) | " + " | ".join(f"{kl:.2f}" for kl in fb.kl_by_k) + " |",
        "",
        f"![best-of-{n}](best_of_n.png)",
        "",
        f"Samples (the first of the {n} samples and the reward model's pick, for the first test prompts; gold score "
        f"in brackets):",
        "",
        f"| prompt | a sample of the base model | best-of-{n} |",
        "|---|---|---|",
    ]
    for prompt, first, g0, pick, g1 in fb.shown:
        lines.append(f"| {_quote(user_message(prompt), 80)} | {_quote(first)} ({g0:.2f}) | {_quote(pick)} ({g1:.2f}) |")
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines.append(f"| **total** | {sum(timings.values()):.1f} |")
    return lines


def run_demo(out: Path, model_name: str | None = None) -> Path:
    """Run the demo's stages in order; write the plots and ``report.md`` to ``out``; return the report's path."""
    import matplotlib

    matplotlib.use("Agg")

    from course_lib.llm.models import load_model, resolve_model
    from course_lib.utils.device import pick_device
    from course_lib.utils.profile import get_profile

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    stages = tqdm(total=6, desc="demo", unit="stage")

    def timed(name: str, fn, *args):
        stages.set_postfix_str(name)
        start = time.perf_counter()
        result = fn(*args)
        timings[name] = time.perf_counter() - start
        stages.update(1)
        return result

    source = resolve_model(model_name)
    model, tok = timed("load model", load_model, model_name)
    llm = timed("chat + next-token distribution", llm_stage, model, tok, out)
    maze = timed("maze: value iteration + Q-learning", maze_stage, out)
    ppo = timed("PPO on CartPole", ppo_stage, out)
    rms = timed("reward model + held-out accuracy", reward_stage, model, tok, out)
    feedback = timed("feedback: best-of-n against the reward model", feedback_stage, model, tok, rms.rm, out)
    stages.close()

    lines = _report(source, pick_device(), get_profile().name, llm, maze, ppo, rms, feedback, timings)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report
