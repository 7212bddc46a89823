"""Imitation, then RL: behaviour-clone a shortest-path expert in the maze, then fine-tune with PPO.

The control-world twin of the LLM pipeline "SFT, then RLHF":

* **Demonstrations -> behaviour cloning = SFT.** An expert (here the shortest-path
  planner on the exact model) shows the right action in each state; the policy
  network is trained to predict it with cross-entropy (behaviour cloning, Pomerleau
  1989), exactly as SFT trains an LLM to predict the demonstrator's next token.
* **Reward -> PPO fine-tuning = RLHF.** The cloned network is then the starting
  point of PPO (Schulman et al. 2017), which needs only a reward, not labels.
* **Distribution shift.** When the maze changes (``LAYOUTS["large_changed"]``: a
  new wall blocks the old route just before the cheese, a gap opens beside it),
  the demonstrations are wrong in one state (above the new wall they say "down")
  and silent in the gap, a cell no demonstration ever visited: the greedy clone
  walks the old route and bumps into the new wall forever. Its network still
  knows the rest of the maze, so PPO has to fix only the part that changed, and
  does so far faster than from scratch.
* **What behaviour cloning cannot do alone.** It can only copy: it never
  improves on the expert, its errors compound once it strays from the states the
  expert labelled (Ross et al. 2011), and it cannot adapt when the world stops
  matching the demonstrations. That needs a reward and exploration: what RL adds.

Observations. PPO's MLP needs flat ``Box`` observations; the maze gives the
robot's cell as ``Discrete(H * W)``. :class:`OneHotCell` turns it into a one-hot
vector of length ``H * W``: the simplest encoding, it keeps the same input size
when walls move (so the network cloned on ``large`` runs unchanged on
``large_changed``), and it makes the distribution shift visible: the weights that
read a cell the demonstrations never visited are never trained.

The expert. :func:`shortest_path_actions` searches breadth-first backwards from
the cheese over the exact model (``env.unwrapped.model``): traps end the episode
and are never goals; ties between equally short moves go to the lowest action
index (up, right, down, left).

Typical use (the lesson and ``tests/test_imitation.py`` do this)::

    data = expert_dataset("large")                        # 67 states, one expert action each
    agent = ActorCritic(data.obs.shape[1], 4)
    behaviour_cloning(agent, data.obs, data.actions, returns=data.returns)
    changed = partial(make_maze_env, "large_changed")
    success_rate(agent, changed, greedy=False)            # about 0.8; random moves: 0.0
    stop = StopWhenSolved(changed)                        # greedy success after each update
    ppo(PPO_PRESETS["maze_finetune"], seed, env_fn=changed, agent=agent, callback=stop)
    stop.solved_at                                        # env steps until the greedy policy succeeds

Measured on a 2-core CPU (seeds 0-19, ``maze_finetune``, 20k-step budget): from the clone,
greedy success on ``large_changed`` after a median of 2.8k env steps (1.5k to 6.1k), well
under a second of PPO; from scratch, 0 of 10 seeds within the budget (0 of 5 within 100k):
a policy that starts uniform finds no reward better than ending the episode in the trap,
or collapses onto bumping into a wall.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, NamedTuple, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from course_lib.deep.ppo import evaluate
from course_lib.envs.maze import CHEESE, MazeRobotEnv
from course_lib.utils.validation import check_float, check_int

MAZE_MAX_STEPS = 200
"""Time limit of :func:`make_maze_env`: long enough for a random walk to reach the cheese now and then
(the shortest paths are 32 and 36 steps), short enough that a policy stuck against a wall costs little."""


# ---- the environment ----------------------------------------------------------------------


def one_hot_cells(states, n_cells: int) -> np.ndarray:
    """Cell indices -> one-hot rows: (B,) ints in [0, n_cells) -> (B, n_cells) float32 (a scalar gives (n_cells,))."""
    states = np.asarray(states)
    out = np.zeros(states.shape + (n_cells,), dtype=np.float32)
    np.put_along_axis(out, states[..., None].astype(np.int64), 1.0, axis=-1)
    return out


class OneHotCell(gym.ObservationWrapper):
    """The maze with a one-hot observation of the robot's cell, and ``info["is_success"]``.

    Observation: ``Box(0, 1, (H * W,), float32)``, 1 at ``row * W + column``. ``info["is_success"]``
    (the key Stable-Baselines3 also reads) is True on the step that enters a cheese cell.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        maze = env.unwrapped
        if not isinstance(maze, MazeRobotEnv):
            raise ValueError(f"env: expected a MazeRobotEnv (possibly wrapped), got {type(maze).__name__}")
        self.n_cells = maze.height * maze.width
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.n_cells,), dtype=np.float32)
        self._cheese = frozenset(maze.state_of(r, c) for r, c in np.argwhere(maze.grid == CHEESE))

    def observation(self, observation) -> np.ndarray:
        return one_hot_cells(int(observation), self.n_cells)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, is_success=bool(terminated and int(obs) in self._cheese))
        return self.observation(obs), reward, terminated, truncated, info


def make_maze_env(layout: str | Sequence[str] = "large", max_steps: int = MAZE_MAX_STEPS, **maze_kwargs) -> gym.Env:
    """One maze for PPO's MLP: ``TimeLimit(OneHotCell(MazeRobotEnv(layout, **maze_kwargs)), max_steps)``.

    Module-level, so ``functools.partial(make_maze_env, "large_changed")`` pickles (PPO's checkpoints
    pickle ``env_fn``). ``maze_kwargs`` go to :class:`MazeRobotEnv` (``slip``, rewards, ``render_mode``).
    """
    check_int("max_steps", max_steps, 1)
    return gym.wrappers.TimeLimit(OneHotCell(MazeRobotEnv(layout, **maze_kwargs)), max_episode_steps=max_steps)


def _maze(env) -> MazeRobotEnv:
    """A MazeRobotEnv from a layout (name or rows) or an env that wraps one."""
    if isinstance(env, (str, list, tuple)):
        return MazeRobotEnv(env)
    if isinstance(getattr(env, "unwrapped", None), MazeRobotEnv):
        return env.unwrapped
    raise ValueError(f"env: expected a layout name, a list of rows or a MazeRobotEnv (possibly wrapped), "
                     f"got {env!r:.80}")


# ---- the expert ---------------------------------------------------------------------------


def _deterministic_next(maze: MazeRobotEnv) -> np.ndarray:
    """(S, A) next state of each move; raises unless every move has exactly one outcome (slip = 0)."""
    model = maze.model
    nxt = np.empty((model.n_states, model.n_actions), dtype=np.int64)
    for s in range(model.n_states):
        for a in range(model.n_actions):
            outcomes = model.transitions[s][a]
            if len(outcomes) != 1:
                raise ValueError(f"env: expected a deterministic maze (slip=0), got {len(outcomes)} outcomes for "
                                 f"state {s}, action {a}")
            nxt[s, a] = outcomes[0].next_state
    return nxt


def cheese_distances(env) -> np.ndarray:
    """Fewest steps from each state to a cheese: (S,) float, 0 on cheese, ``inf`` where none is reachable.

    Breadth-first search backwards from the cheese cells over the exact model's moves s -> s'
    (bumps into walls, s' = s, never get closer). Walls, traps (terminal, not goals) and cells cut
    off from the cheese get ``inf``. Counts steps only, not rewards: a step into a cliff counts
    as one step back to the start.

    Args:
        env: a layout name, a list of rows, or a deterministic :class:`MazeRobotEnv` (possibly wrapped).
    """
    maze = _maze(env)
    nxt = _deterministic_next(maze)
    model = maze.model
    live = [s for s in range(model.n_states) if s not in model.terminal_states and s not in model.wall_states]
    predecessors: dict[int, list[int]] = {}
    for s in live:
        for s2 in set(nxt[s].tolist()) - {s}:
            predecessors.setdefault(s2, []).append(s)
    dist = np.full(model.n_states, np.inf)
    goals = [maze.state_of(r, c) for r, c in np.argwhere(maze.grid == CHEESE)]
    dist[goals] = 0
    queue = deque(goals)
    while queue:
        s2 = queue.popleft()
        for s in predecessors.get(s2, ()):
            if dist[s] == np.inf:
                dist[s] = dist[s2] + 1
                queue.append(s)
    return dist


def shortest_path_actions(env) -> np.ndarray:
    """The expert: for each state, a move on a shortest path to the cheese.

    Returns:
        (S,) int64: the lowest action index (0 up, 1 right, 2 down, 3 left) whose next state is one
        step closer to the cheese (:func:`cheese_distances`); -1 on walls, terminal cells and cells
        from which no cheese is reachable.
    """
    maze = _maze(env)
    dist = cheese_distances(maze)
    nxt = _deterministic_next(maze)
    closer = dist[nxt] == (dist - 1)[:, None]  # (S, A): the move gets one step nearer
    closer &= np.isfinite(dist)[:, None] & (dist > 0)[:, None]
    return np.where(closer.any(axis=1), closer.argmax(axis=1), -1)  # argmax: the first True, the tie-break


def expert_returns(env, gamma: float = 0.99) -> np.ndarray:
    """(S,) discounted return of following the expert from each state (NaN where it has no action).

    G(s) = r(s, a*) + gamma * G(s') with G = 0 after a terminating move, read off the exact model's
    rewards; the targets for pre-training the critic.
    """
    check_float("gamma", gamma, "[0, 1]")
    maze = _maze(env)
    dist, actions = cheese_distances(maze), shortest_path_actions(maze)
    G = np.full(maze.model.n_states, np.nan)
    for s in sorted(np.flatnonzero(actions >= 0), key=lambda s: dist[s]):  # nearest first
        (t,) = maze.model.transitions[s][actions[s]]
        G[s] = t.reward + (0.0 if t.terminated else gamma * G[t.next_state])
    return G


class ExpertData(NamedTuple):
    """Demonstrations, one row per state: what :func:`behaviour_cloning` trains on."""

    obs: torch.Tensor
    """(N, S) float32 one-hot observations, as :class:`OneHotCell` gives them."""
    actions: torch.Tensor
    """(N,) long: the expert's action."""
    returns: torch.Tensor
    """(N,) float32: the expert's discounted return from that state (critic targets)."""
    states: torch.Tensor
    """(N,) long: the cell index of each row."""


def expert_dataset(env="large", coverage: str = "all", gamma: float = 0.99) -> ExpertData:
    """The expert's action in each state, as tensors ready for :func:`behaviour_cloning`.

    ``coverage="all"``: one row per state from which the cheese is reachable (the default). A maze
    is small enough to ask the expert everywhere, a superset of what DAgger (Ross et al. 2011)
    collects by asking the expert in the states the learner visits: the clone is never off its data
    on the maze it was trained on, so the only shift left is the one the lesson is about, a changed
    maze. ``coverage="path"``: only the states on the expert's own path from the start (what
    recorded demonstrations give); one wrong step then leaves the data and errors compound
    (measured: fine-tuning on ``large_changed`` then solved 3 of 5 seeds within 20k steps).

    Args:
        env: a layout name, a list of rows, or a :class:`MazeRobotEnv` (possibly wrapped).
        gamma: discount of ``returns``, in [0, 1].
    """
    if coverage not in ("all", "path"):
        raise ValueError(f"coverage: expected 'all' or 'path', got {coverage!r}")
    maze = _maze(env)
    actions = shortest_path_actions(maze)
    G = expert_returns(maze, gamma)
    if coverage == "all":
        states = np.flatnonzero(actions >= 0)
    else:
        states, s, nxt = [], maze.start_state, _deterministic_next(maze)
        while actions[s] >= 0:
            states.append(s)
            s = nxt[s, actions[s]]
        states = np.array(states, dtype=np.int64)
    n_cells = maze.height * maze.width
    return ExpertData(torch.as_tensor(one_hot_cells(states, n_cells)), torch.as_tensor(actions[states]),
                      torch.as_tensor(G[states], dtype=torch.float32), torch.as_tensor(states))


# ---- behaviour cloning ----------------------------------------------------------------------


@dataclass
class BCHistory:
    """Per-epoch record of :func:`behaviour_cloning`, measured on the whole dataset after the epoch."""

    loss: list[float] = field(default_factory=list)
    """Cross-entropy -mean log pi(a_expert | s) (nats)."""
    accuracy: list[float] = field(default_factory=list)
    """Share of rows where the greedy action (argmax of the logits) is the expert's."""
    entropy: list[float] = field(default_factory=list)
    """Mean entropy of pi(. | s) (nats): how much the clone will still explore when PPO takes over."""
    value_loss: list[float] = field(default_factory=list)
    """0.5 * mean (V(s) - G)^2 against the expert's returns (empty when the critic is not trained)."""


def _describe(x) -> str:
    """'a (3, 4) torch.float32 tensor' or the type's name, for error messages."""
    if isinstance(x, torch.Tensor):
        return f"a {tuple(x.shape)} {x.dtype} tensor" + ("" if torch.isfinite(x).all() else " with non-finite values")
    return type(x).__name__



def behaviour_cloning(agent: nn.Module, obs: torch.Tensor, actions: torch.Tensor, *, epochs: int = 200,
                      lr: float = 1e-2, seed: int = 0, batch_size: int | None = None,
                      returns: torch.Tensor | None = None, label_smoothing: float = 0.1) -> BCHistory:
    """Train ``agent``'s actor to imitate ``actions`` (cross-entropy), in place; optionally its critic too.

    The actor minimises -mean_i log pi(a_i | s_i), the negative log-likelihood of the expert's actions:
    maximum likelihood, like SFT's next-token loss. Two choices, both measured for PPO fine-tuning on
    ``large_changed`` (``maze_finetune``, 10 seeds, 20k env steps):

    * ``label_smoothing`` (default 0.1) puts 0.1 of the target mass uniformly on all actions, so the
      clone keeps pi(a) >= 0.025 for every move (entropy about 0.35 nats instead of about 0.01): the
      greedy actions are the same (100% accuracy), but PPO can still stumble on the new gap.
      Without it, fine-tuning solved 1 of 10 seeds; with 0.1, 20 of 20; with 0.2, 10 of 10 but slower.
    * ``returns`` also fits the critic to the expert's discounted returns (0.5 * squared error), so
      PPO's first advantages are not measured against a random critic (as RLHF starts its value
      head from a trained model). Without it, 8 of 10 seeds solved, median 7.4k steps instead of
      2.8k. The actor and the critic are separate networks, so the two losses do not interfere.

    Args:
        agent: an :class:`~course_lib.deep.ppo.ActorCritic` (``forward`` gives (B, A) logits, ``value`` (B,)).
        obs: (N, D) float observations. actions: (N,) long, in [0, A).
        epochs: passes over the data, >= 1 (about 25 reach 100% accuracy on ``large``; the critic
            needs about 200). lr: Adam step size in (0, 1]. seed: seeds the shuffling.
        batch_size: rows per gradient step (default: all N, one step per epoch).
        returns: (N,) float critic targets, or None to leave the critic untouched.
        label_smoothing: in [0, 1); 0 is plain maximum likelihood.

    Returns:
        a :class:`BCHistory`.

    Raises:
        ValueError: a bad argument (the message names it, says what was expected and what came).
        FloatingPointError: the loss is not finite; the message names the epoch and the minibatch.
    """
    if not isinstance(agent, nn.Module) or not all(hasattr(agent, name) for name in ("actor", "critic", "value")):
        raise ValueError(f"agent: expected an ActorCritic (.actor and .critic networks, forward -> logits, "
                         f"value -> V), got {type(agent).__name__}")
    if not isinstance(obs, torch.Tensor) or obs.ndim != 2 or not obs.is_floating_point():
        raise ValueError(f"obs: expected a (N, D) float tensor, got {_describe(obs)}")
    n = obs.shape[0]
    if not isinstance(actions, torch.Tensor) or actions.shape != (n,) or actions.dtype != torch.long:
        raise ValueError(f"actions: expected a ({n},) long tensor (one per row of obs), got {_describe(actions)}")
    if n == 0:
        raise ValueError("obs: expected at least one row, got 0")
    check_int("epochs", epochs, 1)
    check_float("lr", lr, "(0, 1]")
    check_int("seed", seed, 0)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    check_float("label_smoothing", label_smoothing, "[0, 1)")
    if returns is not None and (not isinstance(returns, torch.Tensor) or returns.shape != (n,)
                                or not torch.isfinite(returns).all()):
        raise ValueError(f"returns: expected a ({n},) tensor of finite floats or None, got {_describe(returns)}")
    device = next(agent.parameters()).device
    obs, actions = obs.to(device), actions.to(device)
    with torch.no_grad():
        n_actions = agent(obs[:1]).shape[-1]  # also checks that D fits the network
    if actions.min() < 0 or actions.max() >= n_actions:
        raise ValueError(f"actions: expected values in [0, {n_actions - 1}], got [{actions.min().item()}, "
                         f"{actions.max().item()}]")
    if returns is not None:
        returns = returns.to(device, torch.float32)

    generator = torch.Generator().manual_seed(int(seed))
    params = list(agent.actor.parameters()) + (list(agent.critic.parameters()) if returns is not None else [])
    optimizer = torch.optim.Adam(params, lr=lr)
    size = n if batch_size is None else min(batch_size, n)
    history = BCHistory()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for k, start in enumerate(range(0, n, size)):
            mb = order[start:start + size]
            loss = nn.functional.cross_entropy(agent(obs[mb]), actions[mb], label_smoothing=label_smoothing)
            if returns is not None:
                loss = loss + 0.5 * (agent.value(obs[mb]) - returns[mb]).pow(2).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}, minibatch {k}: the behaviour-cloning loss is {loss.item()}; "
                                         "lower lr or check obs and returns")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():  # whole-dataset metrics after the epoch
            logits = agent(obs)  # (N, A)
            logp = torch.log_softmax(logits, dim=-1)
            history.loss.append(nn.functional.nll_loss(logp, actions).item())
            history.accuracy.append((logits.argmax(-1) == actions).float().mean().item())
            history.entropy.append(-(logp.exp() * logp).sum(-1).mean().item())
            if returns is not None:
                history.value_loss.append(0.5 * (agent.value(obs) - returns).pow(2).mean().item())
        if not math.isfinite(history.loss[-1]):
            raise FloatingPointError(f"epoch {epoch}: the behaviour-cloning loss is {history.loss[-1]}; lower lr")
    return history


# ---- evaluation ---------------------------------------------------------------------------


def _check_eval_args(env_fn, episodes, seed) -> None:
    if not callable(env_fn):
        raise ValueError(f"env_fn: expected a function that builds an env, e.g. partial(make_maze_env, 'large'), "
                         f"got {env_fn!r}")
    check_int("episodes", episodes, 1)
    check_int("seed", seed, 0)


def _success(policy: Callable[[np.ndarray], np.ndarray], envs: list[gym.Env], seed: int) -> np.ndarray:
    """Play one episode in each env, side by side (env i reset with ``seed + i``), choosing actions with
    ``policy``: (B, D) observations -> (B,) actions. Returns (len(envs),) bool: reached the cheese."""
    obs = np.stack([env.reset(seed=int(seed) + i)[0] for i, env in enumerate(envs)])  # (episodes, D)
    running, success = np.ones(len(envs), dtype=bool), np.zeros(len(envs), dtype=bool)
    while running.any():
        idx = np.flatnonzero(running)
        for i, action in zip(idx, policy(obs[idx])):
            obs[i], _, terminated, truncated, info = envs[i].step(int(action))
            if terminated or truncated:
                running[i] = False
                if terminated and "is_success" not in info:
                    raise ValueError("env_fn: expected an env that reports info['is_success'] when an episode "
                                     "terminates, e.g. make_maze_env")
                success[i] = bool(info.get("is_success", False))
    for env in envs:
        env.close()
    return success


def success_rate(agent: nn.Module, env_fn: Callable[[], gym.Env], episodes: int = 20, greedy: bool = True,
                 seed: int = 10_000) -> float:
    """Share of ``episodes`` episodes that reach the cheese before the time limit.

    ``greedy``: take the argmax of the logits (on a deterministic maze every episode is then the same);
    otherwise sample from pi(. | s) with a torch generator seeded by ``seed`` (the global RNGs are left
    alone). Env i is reset with ``seed + i``; ``env_fn`` must report ``info["is_success"]`` (as
    :func:`make_maze_env` does).
    """
    if not isinstance(agent, nn.Module):
        raise ValueError(f"agent: expected a torch module mapping (B, D) observations to (B, A) logits, got "
                         f"{type(agent).__name__}")
    _check_eval_args(env_fn, episodes, seed)
    if not isinstance(greedy, bool):
        raise ValueError(f"greedy: expected a bool, got {greedy!r}")
    device = next(agent.parameters()).device
    generator = torch.Generator().manual_seed(int(seed))

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = agent(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu()  # (B, A)
        if greedy:
            return logits.argmax(-1).numpy()
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1).numpy()  # (B,)

    return float(_success(policy, [env_fn() for _ in range(episodes)], seed).mean())


def random_success_rate(env_fn: Callable[[], gym.Env], episodes: int = 100, seed: int = 10_000) -> float:
    """The baseline: share of episodes in which uniformly random moves reach the cheese before the time limit.

    Moves come from ``numpy.random.default_rng(seed)``; env i is reset with ``seed + i``.
    """
    _check_eval_args(env_fn, episodes, seed)
    envs = [env_fn() for _ in range(episodes)]
    rng, n_actions = np.random.default_rng(int(seed)), int(envs[0].action_space.n)
    return float(_success(lambda obs: rng.integers(n_actions, size=len(obs)), envs, seed).mean())


MEASURES = ("success", "return")
"""What :class:`StopWhenSolved` can score: the success rate or the mean greedy return."""


class StopWhenSolved:
    """A :func:`~course_lib.deep.ppo.ppo` callback: evaluate the greedy policy every ``every`` env steps and
    stop training once its score reaches ``threshold``.

    Args:
        env_fn: builds one evaluation env, e.g. ``partial(make_maze_env, "large")``, or a registered env id
            (``"CartPole-v1"``, made with ``gymnasium.make``).
        threshold: the score that counts as solved.
        every: env steps between evaluations: the first call at or after each multiple of ``every``
            evaluates (``every=1``: after every update).
        episodes, seed: evaluation episodes, env i reset with ``seed + i``.
        greedy: with ``measure="success"``, False samples the actions (see :func:`success_rate`).
        measure: ``"success"``: the share of episodes that reach the goal (:func:`success_rate`; the env
            reports ``info["is_success"]``; ``threshold`` in (0, 1]). ``"return"``: the mean undiscounted
            return of greedy episodes (:func:`~course_lib.deep.ppo.evaluate`), e.g. 475 on CartPole-v1,
            its "solved" level (lesson 7).

    After training, ``solved_at`` is the global step of the first evaluation at or above the threshold
    (None if never); ``steps`` and ``scores`` list every evaluation, ``history`` pairs them as
    ``(global_step, score)``.
    """

    def __init__(self, env_fn: Callable[[], gym.Env] | str, threshold: float = 1.0, every: int = 1,
                 episodes: int = 1, greedy: bool = True, seed: int = 10_000, measure: str = "success"):
        if measure not in MEASURES:
            raise ValueError(f"measure: expected one of {list(MEASURES)}, got {measure!r}")
        if measure == "success":
            check_float("threshold", threshold, "(0, 1]")
        elif isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ValueError(f"threshold: expected a finite float, got {threshold!r}")
        if isinstance(env_fn, str):
            env_fn = partial(gym.make, env_fn)
        _check_eval_args(env_fn, episodes, seed)
        check_int("every", every, 1)
        if not isinstance(greedy, bool) or (measure == "return" and not greedy):
            raise ValueError(f"greedy: expected a bool (True with measure='return'), got {greedy!r}")
        self.env_fn, self.threshold, self.every, self.episodes = env_fn, threshold, every, episodes
        self.greedy, self.seed, self.measure = greedy, seed, measure
        self.next_at = every
        self.solved_at: int | None = None
        self.steps: list[int] = []
        self.scores: list[float] = []

    @property
    def history(self) -> list[tuple[int, float]]:
        return list(zip(self.steps, self.scores))

    def score(self, agent: nn.Module) -> float:
        """The measure of ``agent`` now: its success rate or its mean greedy return."""
        if self.measure == "return":
            return float(evaluate(agent, self.env_fn, self.episodes, self.seed).mean())
        return success_rate(agent, self.env_fn, self.episodes, self.greedy, self.seed)

    def __call__(self, global_step: int, agent: nn.Module) -> bool:
        if global_step < self.next_at:
            return False
        self.next_at = (global_step // self.every + 1) * self.every  # the next multiple of every
        score = self.score(agent)
        self.steps.append(global_step)
        self.scores.append(score)
        if score >= self.threshold:
            self.solved_at = global_step
            return True
        return False
