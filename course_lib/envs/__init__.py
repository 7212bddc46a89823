"""Gymnasium environments: the maze robot, the cat-feeder bandit, the maximisation-bias MDP, the token MDP. numpy + gymnasium only, no torch.

Importing this package registers the versioned ids, each with a time limit::

    import gymnasium as gym
    import course_lib.envs  # registers course/...
    env = gym.make("course/MazeRobot-v0", render_mode="ansi")

Layer 2 (beside ``data``): imports only ``utils``.
"""

from gymnasium.envs.registration import register, registry

from course_lib.envs.bandit import CatFeederBandit
from course_lib.envs.maxbias import MaxBiasEnv
from course_lib.envs.maze import LAYOUTS, MazeModel, MazeRobotEnv, Transition, parse_layout
from course_lib.envs.token_mdp import TokenMDPEnv, WordScorer

_IDS = {
    "course/MazeRobot-v0": ("course_lib.envs.maze:MazeRobotEnv", {"layout": "small"}, 100),
    "course/CliffMaze-v0": ("course_lib.envs.maze:MazeRobotEnv", {"layout": "cliff"}, 200),
    "course/LargeMaze-v0": ("course_lib.envs.maze:MazeRobotEnv", {"layout": "large"}, 400),
    "course/MaxBias-v0": ("course_lib.envs.maxbias:MaxBiasEnv", {}, 10),
}
# Texts end at EOS or after max_tokens words, so the token MDPs need no TimeLimit either.
_IDS["course/TokenMDP-v0"] = ("course_lib.envs.token_mdp:TokenMDPEnv", {"observation": "index"}, None)
_IDS["course/TokenMDPOneHot-v0"] = ("course_lib.envs.token_mdp:TokenMDPEnv", {"observation": "onehot"}, None)
# The bandit ends its own episodes after `steps` pulls (truncated), so it needs no TimeLimit wrapper.
_IDS["course/CatFeeder-v0"] = ("course_lib.envs.bandit:CatFeederBandit", {}, None)
for _id, (_entry, _kwargs, _limit) in _IDS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry, kwargs=_kwargs, max_episode_steps=_limit)

__all__ = ["CatFeederBandit", "MaxBiasEnv", "LAYOUTS", "MazeModel", "MazeRobotEnv", "TokenMDPEnv", "Transition",
           "WordScorer", "parse_layout"]
