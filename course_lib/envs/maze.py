"""The maze robot that must find the cheese: a grid-world MDP for Part I.

The MDP code (layout parsing, dynamics, the exact model) lives here; drawing
lives in :mod:`course_lib.envs.maze_render`.
"""

from __future__ import annotations

import math
from collections import deque
from numbers import Real
from typing import NamedTuple, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

WALL, FLOOR, START, CHEESE, TRAP, CLIFF = "#", ".", "S", "C", "T", "X"
CELL_CHARS = {WALL, FLOOR, START, CHEESE, TRAP, CLIFF}

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
ACTION_NAMES = ("up", "right", "down", "left")
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # (d_row, d_col) per action

LAYOUTS: dict[str, tuple[str, ...]] = {
    # Lesson 1: a robot, a few walls, one piece of cheese. Shortest path: 7 steps.
    "small": (
        "#######",
        "#S..#.#",
        "#.#...#",
        "#.#.#.#",
        "#...#C#",
        "#######",
    ),
    # Lesson 4: Sutton & Barto's cliff walking (Example 6.6) with walls around it.
    # Stepping into X costs -100 and sends the robot back to S.
    "cliff": (
        "##############",
        "#............#",
        "#............#",
        "#............#",
        "#SXXXXXXXXXXC#",
        "##############",
    ),
    # Lesson 5: a larger maze for planning (Dyna-Q), with a trap (T) that ends the episode. Shortest path: 32 steps.
    "large": (
        "###############",
        "#S....#.......#",
        "#.###.#.#####.#",
        "#.#...#.#...#.#",
        "#.#.###.#.#.#.#",
        "#.#.....#.#...#",
        "#.#######.###.#",
        "#.......#...#.#",
        "#######.###.#.#",
        "#T......#...#C#",
        "###############",
    ),
    # Lesson 7 (imitation, then RL): "large" after a change. A new wall at (row 4, column 13) blocks the old
    # shortest path just before the cheese; a gap opens at (row 3, column 12) beside it. Shortest path: 36 steps.
    "large_changed": (
        "###############",
        "#S....#.......#",
        "#.###.#.#####.#",
        "#.#...#.#.....#",
        "#.#.###.#.#.###",
        "#.#.....#.#...#",
        "#.#######.###.#",
        "#.......#...#.#",
        "#######.###.#.#",
        "#T......#...#C#",
        "###############",
    ),
}


class Transition(NamedTuple):
    """One possible outcome of taking an action in a state."""

    prob: float
    """Probability of this outcome."""
    next_state: int
    """State index after the move."""
    reward: float
    """Reward received on this transition."""
    terminated: bool
    """True when ``next_state`` ends the episode (cheese or trap): do not bootstrap from it."""


class MazeModel(NamedTuple):
    """The exact MDP, for dynamic programming: ``transitions[s][a]`` lists the outcomes."""

    n_states: int
    n_actions: int
    transitions: tuple[tuple[tuple[Transition, ...], ...], ...]
    """Indexed ``[state][action]``; terminal states have one self-loop with reward 0, terminated."""
    start_state: int
    terminal_states: frozenset[int]
    """Cheese and trap cells: an episode ends on entering them."""
    wall_states: frozenset[int]
    """Cells the robot can never occupy."""

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dense arrays ``(P, R, done)``: P (S, A, S') probabilities, R (S, A) expected reward,
        done (S, A, S') True where that transition terminates."""
        S, A = self.n_states, self.n_actions
        P = np.zeros((S, A, S))
        R = np.zeros((S, A))
        done = np.zeros((S, A, S), dtype=bool)
        for s in range(S):
            for a in range(A):
                for t in self.transitions[s][a]:
                    P[s, a, t.next_state] += t.prob
                    R[s, a] += t.prob * t.reward
                    done[s, a, t.next_state] |= t.terminated
        return P, R, done


def parse_layout(layout: Sequence[str]) -> np.ndarray:
    """Validate a layout and return it as a (H, W) array of single characters.

    Raises:
        ValueError: not a non-empty list of strings, ragged rows, an unknown
            character, not exactly one start, no cheese, or no path from the
            start to any cheese; the message says what and where (row, column).
    """
    if isinstance(layout, str) or not isinstance(layout, Sequence) or len(layout) == 0:
        raise ValueError(f"layout: expected a non-empty list of strings, got {layout!r:.60}")
    for r, row in enumerate(layout):
        if not isinstance(row, str) or not row:
            raise ValueError(f"layout: row {r}: expected a non-empty string, got {row!r}")
    width = len(layout[0])
    for r, row in enumerate(layout):
        if len(row) != width:
            raise ValueError(f"layout: ragged rows: row {r} has {len(row)} cells, row 0 has {width}")
        for c, ch in enumerate(row):
            if ch not in CELL_CHARS:
                raise ValueError(
                    f"layout: unknown character {ch!r} at row {r}, column {c}; expected one of {''.join(sorted(CELL_CHARS))}"
                )
    grid = np.array([list(row) for row in layout])
    starts = list(zip(*np.nonzero(grid == START)))
    if len(starts) != 1:
        where = ", ".join(f"(row {r}, column {c})" for r, c in starts)
        raise ValueError(f"layout: expected exactly one start 'S', got {len(starts)}" + (f" at {where}" if where else ""))
    if not (grid == CHEESE).any():
        raise ValueError("layout: expected at least one cheese 'C', got none")
    # Breadth-first search from the start through cells the robot can enter and leave.
    seen = {starts[0]}
    queue = deque([starts[0]])
    while queue:
        r, c = queue.popleft()
        if grid[r, c] == CHEESE:
            return grid
        if grid[r, c] in (TRAP, CLIFF) and (r, c) != starts[0]:
            continue  # a trap ends the episode; a cliff sends the robot back to the start
        for dr, dc in MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < grid.shape[0] and 0 <= nc < grid.shape[1] and grid[nr, nc] != WALL and (nr, nc) not in seen:
                seen.add((nr, nc))
                queue.append((nr, nc))
    r0, c0 = starts[0]
    raise ValueError(f"layout: the cheese is unreachable from the start at (row {r0}, column {c0})")


class MazeRobotEnv(gym.Env):
    """A robot in a grid maze must find the cheese.

    ## Description
    The robot starts on ``S`` and moves one cell per step. Walls ``#`` block
    it (it stays put). Reaching cheese ``C`` ends the episode with a reward;
    a trap ``T`` ends it with a penalty; a cliff ``X`` costs a large penalty
    and sends the robot back to the start (Sutton & Barto's cliff walking).
    With ``slip > 0`` the floor is slippery: the robot moves at a right angle
    to the chosen direction with probability ``slip`` (half each way).

    ## Action Space
    ``Discrete(4)``: 0 up, 1 right, 2 down, 3 left.

    ## Observation Space
    ``Discrete(H * W)``: the robot's cell as ``row * W + column``.

    ## Rewards
    ``step_reward`` (default -1) for every move, including bumps into walls;
    ``cheese_reward`` (default +10) instead on reaching the cheese;
    ``trap_reward`` (default -10) on entering a trap; ``cliff_reward``
    (default -100) on stepping into the cliff. Each must be a finite number.

    ## Episode End
    Terminated on reaching cheese or a trap. Truncated by the time limit of
    the registered ids (``course/MazeRobot-v0``: 100 steps, ``course/CliffMaze-v0``:
    200, ``course/LargeMaze-v0``: 400): bootstrap on truncation, not on termination.

    ## Arguments
    ``layout``: a name from ``LAYOUTS`` (``small``, ``cliff``, ``large``, ``large_changed``) or a
    list of equal-length strings over ``# . S C T X``. ``slip``: probability in
    [0, 1). ``render_mode``: ``"ansi"`` (text) or ``"rgb_array"`` (image).

    ## Exact model
    ``env.unwrapped.model`` is a :class:`MazeModel` of typed named tuples for
    dynamic programming; ``model.arrays()`` gives dense (P, R, done).

    ## References
    Sutton & Barto (2018), *Reinforcement Learning: An Introduction*, 2nd ed.,
    Example 6.6 (cliff walking) and Section 3.5 (gridworld).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        layout: str | Sequence[str] = "small",
        slip: float = 0.0,
        step_reward: float = -1.0,
        cheese_reward: float = 10.0,
        trap_reward: float = -10.0,
        cliff_reward: float = -100.0,
        render_mode: str | None = None,
    ):
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise ValueError(f"layout: expected one of {sorted(LAYOUTS)} or a list of strings, got {layout!r}")
            layout = LAYOUTS[layout]
        self.grid = parse_layout(layout)
        if not (isinstance(slip, (int, float)) and 0 <= slip < 1):
            raise ValueError(f"slip: expected a probability in [0, 1), got {slip!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: expected one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.slip = float(slip)
        for name, value in (("step_reward", step_reward), ("cheese_reward", cheese_reward),
                            ("trap_reward", trap_reward), ("cliff_reward", cliff_reward)):
            if not (isinstance(value, Real) and math.isfinite(value)):
                raise ValueError(f"{name}: expected a finite number, got {value!r}")
        self.rewards = {"step": float(step_reward), "cheese": float(cheese_reward), "trap": float(trap_reward),
                        "cliff": float(cliff_reward)}
        self.render_mode = render_mode
        self.height, self.width = self.grid.shape
        self.observation_space = spaces.Discrete(self.height * self.width)
        self.action_space = spaces.Discrete(4)
        self.start_state = self.state_of(*np.argwhere(self.grid == START)[0])
        self.model = self._build_model()
        self._P = [[(np.array([t.prob for t in ts]), ts) for ts in row] for row in self.model.transitions]
        self.state = self.start_state
        self.last_action: int | None = None

    # -- the MDP -----------------------------------------------------------------
    def state_of(self, row: int, col: int) -> int:
        return int(row) * self.width + int(col)

    def cell_of(self, state: int) -> tuple[int, int]:
        return divmod(int(state), self.width)

    def _move(self, state: int, action: int) -> Transition:
        """The deterministic outcome of trying to move ``action`` from ``state`` (prob 1)."""
        r, c = self.cell_of(state)
        dr, dc = MOVES[action]
        nr, nc = r + dr, c + dc
        if not (0 <= nr < self.height and 0 <= nc < self.width) or self.grid[nr, nc] == WALL:
            nr, nc = r, c  # bump: stay put
        cell = self.grid[nr, nc]
        if cell == CHEESE:
            return Transition(1.0, self.state_of(nr, nc), self.rewards["cheese"], True)
        if cell == TRAP:
            return Transition(1.0, self.state_of(nr, nc), self.rewards["trap"], True)
        if cell == CLIFF:
            return Transition(1.0, self.start_state, self.rewards["cliff"], False)
        return Transition(1.0, self.state_of(nr, nc), self.rewards["step"], False)

    def _build_model(self) -> MazeModel:
        S = self.height * self.width
        walls = frozenset(self.state_of(r, c) for r, c in np.argwhere(self.grid == WALL))
        terminal = frozenset(self.state_of(r, c) for r, c in np.argwhere(np.isin(self.grid, [CHEESE, TRAP])))
        table = []
        for s in range(S):
            row = []
            for a in range(4):
                if s in terminal or s in walls:
                    row.append((Transition(1.0, s, 0.0, s in terminal),))
                    continue
                # intended direction with prob 1 - slip, each perpendicular with slip / 2
                outcomes: dict[tuple[int, float, bool], float] = {}
                for direction, p in ((a, 1 - self.slip), ((a + 1) % 4, self.slip / 2), ((a + 3) % 4, self.slip / 2)):
                    if p == 0:
                        continue
                    t = self._move(s, direction)
                    key = (t.next_state, t.reward, t.terminated)
                    outcomes[key] = outcomes.get(key, 0.0) + p
                row.append(tuple(Transition(p, ns, rw, term) for (ns, rw, term), p in outcomes.items()))
            table.append(tuple(row))
        return MazeModel(S, 4, tuple(table), self.start_state, terminal, walls)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.state = self.start_state
        self.last_action = None
        return self.state, {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an int in [0, 3] (up, right, down, left), got {action!r}")
        probs, outcomes = self._P[self.state][int(action)]
        t = outcomes[0] if len(outcomes) == 1 else outcomes[self.np_random.choice(len(outcomes), p=probs)]
        self.state = t.next_state
        self.last_action = int(action)
        return self.state, t.reward, t.terminated, False, {}

    # -- rendering (drawing lives in maze_render) ------------------------------------
    def render(self):
        from course_lib.envs.maze_render import render_ansi, render_rgb

        if self.render_mode == "ansi":
            return render_ansi(self.grid, self.cell_of(self.state))
        if self.render_mode == "rgb_array":
            return render_rgb(self.grid, self.cell_of(self.state))
        return None
