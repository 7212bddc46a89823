"""Model-free control with tables: Monte-Carlo, SARSA, expected SARSA, Q-learning, Double Q-learning, Dyna-Q.

Every learner is one top-to-bottom function ``learner(env, config, seed)``
returning ``(Q, history)``. The one-step targets are small pure functions
named after the book's equations, so lessons and exercises can test them alone.

Termination vs truncation (Gymnasium's ``Env.step``): ``terminated`` means
the next state is terminal, so the target is the reward alone; a
``truncated`` episode (time limit) still bootstraps from the next state's
value, because the task itself did not end there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from course_lib.utils.validation import check_float, check_int

METHODS = ("q_learning", "sarsa", "expected_sarsa")


@dataclass(frozen=True)
class TDConfig:
    """Hyper-parameters of the tabular learners."""

    method: str = "q_learning"
    """Target for :func:`td_control`: ``q_learning``, ``sarsa`` or ``expected_sarsa``."""
    episodes: int = 500
    """Training episodes, usually 100 to 5,000."""
    alpha: float = 0.5
    """Step size in (0, 1]; usually 0.1 to 0.5 (deterministic mazes tolerate 0.5 and more)."""
    gamma: float = 0.99
    """Discount in [0, 1]; usually 0.9 to 1."""
    epsilon: float = 0.1
    """Exploration of the epsilon-greedy behaviour policy in [0, 1]; usually 0.05 to 0.2."""
    planning_steps: int = 0
    """Dyna-Q only: simulated updates per real step, usually 5 to 50 (0 is plain Q-learning)."""

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        check_int("episodes", self.episodes, 1)
        check_float("alpha", self.alpha, "(0, 1]")
        check_float("gamma", self.gamma, "[0, 1]")
        check_float("epsilon", self.epsilon, "[0, 1]")
        check_int("planning_steps", self.planning_steps, 0)


TD_PRESETS: dict[str, TDConfig] = {
    # Lesson 4, the small maze: converges to value iteration's Q on the optimal path in ~1 s.
    "small_maze": TDConfig(episodes=300, alpha=0.5, gamma=0.99, epsilon=0.1),
    # Lesson 4, Sutton & Barto's cliff (Example 6.6): alpha 0.5, epsilon 0.1, no discount. ~2 s.
    "cliff": TDConfig(episodes=500, alpha=0.5, gamma=1.0, epsilon=0.1),
    # Lesson 4, maximisation bias (Example 6.7): 300 episodes, alpha 0.1, epsilon 0.1. <1 s.
    "max_bias": TDConfig(episodes=300, alpha=0.1, gamma=1.0, epsilon=0.1),
    # Lesson 5, Dyna-Q on the large maze: 30 episodes, 20 planning steps per real step. ~2 s.
    "dyna_large": TDConfig(episodes=30, alpha=0.5, gamma=0.95, epsilon=0.1, planning_steps=20),
}


@dataclass
class TabularHistory:
    """Per-episode records for plots."""

    returns: list[float] = field(default_factory=list)
    """Undiscounted return of each training episode."""
    lengths: list[int] = field(default_factory=list)
    """Real environment steps of each episode."""
    first_actions: list[int] = field(default_factory=list)
    """The first action of each episode (e.g. 'left' from A in the max-bias MDP)."""
    stopped: bool = False
    """True when a ``stop`` test ended the run early (:func:`dyna_q`); the last episode is then partial."""


# ---- one-step targets (Sutton & Barto 2018, Chapter 6) ---------------------------------


def q_learning_target(reward: float, q_next: np.ndarray, gamma: float, terminated: bool) -> float:
    """r + gamma * max_a' Q(s', a'), or r alone when s' is terminal (Eq. 6.8).

    Args:
        q_next: (A,) action values of the next state (invalid actions set to -inf).
    """
    return float(reward) if terminated else float(reward + gamma * np.max(q_next))


def sarsa_target(reward: float, q_next_action: float, gamma: float, terminated: bool) -> float:
    """r + gamma * Q(s', a') for the action a' actually chosen next, or r when s' is terminal (Eq. 6.7)."""
    return float(reward) if terminated else float(reward + gamma * q_next_action)


def expected_sarsa_target(reward: float, q_next: np.ndarray, probs_next: np.ndarray, gamma: float,
                          terminated: bool) -> float:
    """r + gamma * sum_a' pi(a' | s') Q(s', a'), or r when s' is terminal (Eq. 6.9).

    Args:
        q_next: (A,) next-state action values. probs_next: (A,) the policy's probabilities there.
    """
    if terminated:
        return float(reward)
    valid = probs_next > 0  # masked actions may hold -inf values with probability 0
    return float(reward + gamma * np.dot(probs_next[valid], q_next[valid]))


def double_q_target(reward: float, q_select_next: np.ndarray, q_eval_next: np.ndarray, gamma: float,
                    terminated: bool) -> float:
    """Double Q-learning target (van Hasselt 2010; Sutton & Barto Eq. 6.10):
    r + gamma * Q2(s', argmax_a Q1(s', a)): one table picks the action, the other values it."""
    if terminated:
        return float(reward)
    return float(reward + gamma * q_eval_next[int(np.argmax(q_select_next))])


# ---- behaviour policy --------------------------------------------------------------------


def _valid(info: dict, n_actions: int) -> np.ndarray:
    mask = info.get("action_mask")
    return np.ones(n_actions, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


def greedy_action(q_row: np.ndarray, valid: np.ndarray, rng: np.random.Generator) -> int:
    """argmax over valid actions, ties broken uniformly at random."""
    q = np.where(valid, q_row, -np.inf)
    best = np.flatnonzero(q == q.max())
    return int(rng.choice(best))


def epsilon_greedy_probs(q_row: np.ndarray, valid: np.ndarray, epsilon: float) -> np.ndarray:
    """(A,) action probabilities of the epsilon-greedy policy (ties share the greedy mass)."""
    q = np.where(valid, q_row, -np.inf)
    best = q == q.max()
    probs = valid * (epsilon / valid.sum())
    probs += best * ((1 - epsilon) / best.sum())
    return probs


def epsilon_greedy(q_row: np.ndarray, valid: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """With probability epsilon a uniformly random valid action, else the greedy one."""
    if rng.random() < epsilon:
        return int(rng.choice(np.flatnonzero(valid)))
    return greedy_action(q_row, valid, rng)


def _table(env) -> np.ndarray:
    return np.zeros((env.observation_space.n, env.action_space.n))


def _masked(q_row: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, q_row, -np.inf)


# ---- learners ----------------------------------------------------------------------------


def td_control(env, config: TDConfig, seed: int = 0, progress: bool = False):
    """SARSA, expected SARSA or Q-learning (``config.method``) with an epsilon-greedy behaviour policy.

    Returns:
        ``(Q, history)``: Q (S, A) and a :class:`TabularHistory`.
    """
    rng = np.random.default_rng(seed)
    Q = _table(env)
    history = TabularHistory()
    for episode in tqdm(range(config.episodes), desc=config.method, disable=not progress):
        # 1. start an episode and pick the first action
        s, info = env.reset(seed=seed if episode == 0 else None)
        valid = _valid(info, Q.shape[1])
        a = epsilon_greedy(Q[s], valid, config.epsilon, rng)
        history.first_actions.append(a)
        total, steps, done = 0.0, 0, False
        while not done:
            # 2. act in the real environment
            s2, r, terminated, truncated, info = env.step(a)
            valid2 = _valid(info, Q.shape[1])
            a2 = epsilon_greedy(Q[s2], valid2, config.epsilon, rng)  # next action (used by SARSA)
            # 3. the one-step target: bootstrap unless s2 is terminal (truncation still bootstraps)
            if config.method == "q_learning":
                target = q_learning_target(r, _masked(Q[s2], valid2), config.gamma, terminated)
            elif config.method == "sarsa":
                target = sarsa_target(r, Q[s2, a2], config.gamma, terminated)
            else:
                probs = epsilon_greedy_probs(Q[s2], valid2, config.epsilon)
                target = expected_sarsa_target(r, _masked(Q[s2], valid2), probs, config.gamma, terminated)
            # 4. move Q(s, a) a step alpha towards the target
            Q[s, a] += config.alpha * (target - Q[s, a])
            s, a, valid = s2, a2, valid2
            total += r
            steps += 1
            done = terminated or truncated
        history.returns.append(total)
        history.lengths.append(steps)
    return Q, history


def q_learning(env, config: TDConfig, seed: int = 0, progress: bool = False):
    """Q-learning (Watkins 1989): off-policy TD control. Same as ``td_control`` with method ``q_learning``."""
    return td_control(env, _with(config, method="q_learning"), seed, progress)


def sarsa(env, config: TDConfig, seed: int = 0, progress: bool = False):
    """SARSA: on-policy TD control. Same as ``td_control`` with method ``sarsa``."""
    return td_control(env, _with(config, method="sarsa"), seed, progress)


def expected_sarsa(env, config: TDConfig, seed: int = 0, progress: bool = False):
    """Expected SARSA. Same as ``td_control`` with method ``expected_sarsa``."""
    return td_control(env, _with(config, method="expected_sarsa"), seed, progress)


def _with(config: TDConfig, **changes) -> TDConfig:
    from dataclasses import replace

    return replace(config, **changes)


def double_q_learning(env, config: TDConfig, seed: int = 0, progress: bool = False):
    """Double Q-learning (van Hasselt 2010; Sutton & Barto 2018, Section 6.7).

    Two tables; the behaviour policy is epsilon-greedy on Q1 + Q2; each step
    updates one table, chosen by a coin flip, using the other to value the
    action its own table prefers.

    Returns:
        ``(Q1 + Q2) / 2`` (S, A) and a :class:`TabularHistory`.
    """
    rng = np.random.default_rng(seed)
    Q1, Q2 = _table(env), _table(env)
    history = TabularHistory()
    for episode in tqdm(range(config.episodes), desc="double_q", disable=not progress):
        s, info = env.reset(seed=seed if episode == 0 else None)
        valid = _valid(info, Q1.shape[1])
        total, steps, done = 0.0, 0, False
        while not done:
            # 1. act epsilon-greedily on the sum of both tables
            a = epsilon_greedy(Q1[s] + Q2[s], valid, config.epsilon, rng)
            if steps == 0:
                history.first_actions.append(a)
            s2, r, terminated, truncated, info = env.step(a)
            valid2 = _valid(info, Q1.shape[1])
            # 2. flip a coin: which table learns this step
            learn, other = (Q1, Q2) if rng.random() < 0.5 else (Q2, Q1)
            target = double_q_target(r, _masked(learn[s2], valid2), other[s2], config.gamma, terminated)
            learn[s, a] += config.alpha * (target - learn[s, a])
            s, valid = s2, valid2
            total += r
            steps += 1
            done = terminated or truncated
        history.returns.append(total)
        history.lengths.append(steps)
    return (Q1 + Q2) / 2, history


def mc_control(env, config: TDConfig, seed: int = 0, progress: bool = False):
    """On-policy first-visit Monte-Carlo control with an epsilon-soft policy (Sutton & Barto 2018, Section 5.4).

    Waits for the end of each episode, then moves Q(s, a) towards the observed
    return G for the first visit of each pair (step size ``alpha``). A
    truncated episode's returns are cut short: MC has no bootstrap to fill in.
    """
    rng = np.random.default_rng(seed)
    Q = _table(env)
    history = TabularHistory()
    for episode in tqdm(range(config.episodes), desc="mc_control", disable=not progress):
        # 1. play one whole episode with the epsilon-greedy policy
        s, info = env.reset(seed=seed if episode == 0 else None)
        trajectory: list[tuple[int, int, float]] = []
        done = False
        while not done:
            a = epsilon_greedy(Q[s], _valid(info, Q.shape[1]), config.epsilon, rng)
            s2, r, terminated, truncated, info = env.step(a)
            trajectory.append((s, a, r))
            s, done = s2, terminated or truncated
        # 2. returns backwards: G_t = r_{t+1} + gamma * G_{t+1}
        G = 0.0
        returns = [0.0] * len(trajectory)
        for t in range(len(trajectory) - 1, -1, -1):
            G = trajectory[t][2] + config.gamma * G
            returns[t] = G
        # 3. first-visit updates
        seen: set[tuple[int, int]] = set()
        for (s_t, a_t, _), G_t in zip(trajectory, returns):
            if (s_t, a_t) not in seen:
                seen.add((s_t, a_t))
                Q[s_t, a_t] += config.alpha * (G_t - Q[s_t, a_t])
        history.returns.append(float(sum(r for _, _, r in trajectory)))
        history.lengths.append(len(trajectory))
        history.first_actions.append(trajectory[0][1])
    return Q, history


def dyna_q(env, config: TDConfig, seed: int = 0, progress: bool = False, stop=None):
    """Tabular Dyna-Q (Sutton & Barto 2018, Section 8.2): Q-learning plus planning with a learned model.

    After every real step the model remembers the last outcome of (s, a)
    (deterministic environments), then ``planning_steps`` simulated steps
    replay remembered pairs and apply the same Q-learning update. It assumes
    every action is valid in every state: it ignores ``info["action_mask"]``.

    ``stop``: an optional test ``stop(Q) -> bool``, run after every real step
    (planning included); the run ends at the first True, with
    ``history.stopped`` set and the partial episode's steps in ``lengths``.
    It draws no random numbers, so it does not change the run.
    """
    rng = np.random.default_rng(seed)
    Q = _table(env)
    model: dict[tuple[int, int], tuple[float, int, bool]] = {}
    history = TabularHistory()
    for episode in tqdm(range(config.episodes), desc="dyna_q", disable=not progress):
        s, info = env.reset(seed=seed if episode == 0 else None)
        valid = _valid(info, Q.shape[1])
        total, steps, done = 0.0, 0, False
        while not done:
            # (a)-(d) act, then a direct reinforcement-learning update
            a = epsilon_greedy(Q[s], valid, config.epsilon, rng)
            if steps == 0:
                history.first_actions.append(a)
            s2, r, terminated, truncated, info = env.step(a)
            Q[s, a] += config.alpha * (q_learning_target(r, Q[s2], config.gamma, terminated) - Q[s, a])
            # (e) model learning
            model[(s, a)] = (r, s2, terminated)
            # (f) planning: n simulated one-step updates from remembered pairs
            dyna_planning(Q, model, config.planning_steps, config.alpha, config.gamma, rng)
            valid = _valid(info, Q.shape[1])
            s = s2
            total += r
            steps += 1
            done = terminated or truncated
            if stop is not None and stop(Q):
                history.stopped = True
                break
        history.returns.append(total)
        history.lengths.append(steps)
        if history.stopped:
            break
    return Q, history


def dyna_planning(Q: np.ndarray, model: dict, n: int, alpha: float, gamma: float, rng: np.random.Generator) -> None:
    """Dyna-Q's planning step, in place: ``n`` times, pick a remembered (s, a) at random,
    read (r, s', terminated) from the model, and apply the Q-learning update."""
    if n > 0 and not model:
        raise ValueError("model: expected at least one remembered (s, a) pair to plan from, got an empty model")
    keys = list(model)
    for _ in range(n):
        s, a = keys[rng.integers(len(keys))]
        r, s2, terminated = model[(s, a)]
        Q[s, a] += alpha * (q_learning_target(r, Q[s2], gamma, terminated) - Q[s, a])


# ---- using a table -----------------------------------------------------------------------


def greedy_path(env, Q: np.ndarray, max_steps: int = 500) -> list[int]:
    """States visited by the greedy policy of ``Q`` from a fresh reset (first-index tie-break).

    Args:
        Q: (S, A) action values, S = ``env.observation_space.n`` and A = ``env.action_space.n``.
    """
    expected = (int(env.observation_space.n), int(env.action_space.n))
    if np.shape(Q) != expected:
        raise ValueError(f"Q: expected shape (S, A) = {expected} (env.observation_space.n, env.action_space.n), "
                         f"got {np.shape(Q)}")
    s, info = env.reset()
    path = [int(s)]
    for _ in range(max_steps):
        a = int(np.argmax(_masked(Q[s], _valid(info, Q.shape[1]))))
        s, _, terminated, truncated, info = env.step(a)
        path.append(int(s))
        if terminated or truncated:
            break
    return path
