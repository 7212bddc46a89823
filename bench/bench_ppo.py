"""PPO on CartPole-v1: course_lib's `cartpole_fast` preset vs Stable-Baselines3's PPO with its defaults.

SB3 is what a user would otherwise pick: ``PPO("MlpPolicy", "CartPole-v1")`` with every default
(1 env, 2048 steps per rollout, 10 epochs of minibatches of 64, lr 3e-4). Both run in this
process with the same torch thread count, 3 seeds each. Every 10,000 env steps training pauses
for an evaluation of 10 greedy episodes (the same env seeds for both; its time is not counted);
a run stops once that mean return is >= 475 (CartPole-v1 solved). Printed per run: env steps and
training wall seconds to solve, and steps per second; then the medians and the ratio
course_lib / SB3 of the median wall time to solve.

    python bench/bench_ppo.py [--seeds 3] [--sb3-max-steps 200000] [--threads N]

Needs the `bench` extra (``pip install -e ".[bench]"``: stable-baselines3 2.9.2).
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from course_lib.deep.ppo import PPO_PRESETS, ppo

EVERY, EPISODES, THRESHOLD, EVAL_SEED = 10_000, 10, 475.0, 10_000


def greedy_returns(act, episodes: int = EPISODES, seed: int = EVAL_SEED) -> np.ndarray:
    """Returns of `episodes` CartPole-v1 episodes played side by side; act: (B, 4) float32 array -> (B,) actions."""
    envs = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * episodes, autoreset_mode=AutoresetMode.SAME_STEP)
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while running.any():
        obs, reward, terminated, truncated, _ = envs.step(act(obs))
        returns += reward * running
        running &= ~(terminated | truncated)
    envs.close()
    return returns


def run_course_lib(seed: int) -> dict:
    config = PPO_PRESETS["cartpole_fast"]
    state = {"next": EVERY, "solved_at": None}

    def act(agent):
        def f(obs):
            with torch.no_grad():
                return agent(torch.as_tensor(obs, dtype=torch.float32)).argmax(-1).numpy()
        return f

    def callback(step, agent):  # untimed by ppo()
        if step < state["next"]:
            return False
        state["next"] += EVERY
        if greedy_returns(act(agent)).mean() >= THRESHOLD:
            state["solved_at"] = step
            return True
        return False

    result = ppo(config, seed, callback=callback, progress=False)
    return {"solved_at": state["solved_at"], "seconds": result.seconds, "steps": result.global_step}


def run_sb3(seed: int, max_steps: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class EvalEvery(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next, self.solved_at, self.eval_seconds = EVERY, None, 0.0

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next:
                return True
            self.next += EVERY
            start = time.perf_counter()
            mean = greedy_returns(lambda obs: self.model.predict(obs, deterministic=True)[0]).mean()
            self.eval_seconds += time.perf_counter() - start
            if mean >= THRESHOLD:
                self.solved_at = self.num_timesteps
                return False  # stops learn()
            return True

    model = PPO("MlpPolicy", "CartPole-v1", seed=seed, verbose=0, device="cpu")
    callback = EvalEvery()
    start = time.perf_counter()
    model.learn(total_timesteps=max_steps, callback=callback)
    seconds = time.perf_counter() - start - callback.eval_seconds
    return {"solved_at": callback.solved_at, "seconds": seconds, "steps": model.num_timesteps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per library (default 3)")
    parser.add_argument("--sb3-max-steps", type=int, default=200_000,
                        help="SB3's budget of env steps per seed (default 200000; course_lib's preset has 100000)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's own)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    import stable_baselines3

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; stable-baselines3 "
          f"{stable_baselines3.__version__}; gymnasium {gym.__version__}")
    print(f"solved = mean of {EPISODES} greedy episodes >= {THRESHOLD:g}, evaluated every {EVERY} env steps (untimed)")
    print(f"{'library':<26}{'seed':>5}{'solved at (steps)':>19}{'train s':>10}{'steps/s':>10}")
    results: dict[str, list[dict]] = {"course_lib cartpole_fast": [], "SB3 PPO defaults": []}
    for seed in range(args.seeds):
        for name, run in (("course_lib cartpole_fast", lambda: run_course_lib(seed)),
                          ("SB3 PPO defaults", lambda: run_sb3(seed, args.sb3_max_steps))):
            r = run()
            results[name].append(r)
            solved = "not solved" if r["solved_at"] is None else f"{r['solved_at']:,}"
            print(f"{name:<26}{seed:>5}{solved:>19}{r['seconds']:>10.2f}{r['steps'] / r['seconds']:>10,.0f}",
                  flush=True)
    medians = {}
    for name, rs in results.items():
        solved = [r for r in rs if r["solved_at"] is not None]
        if solved:
            medians[name] = statistics.median(r["seconds"] for r in solved)
            print(f"{name}: solved {len(solved)}/{len(rs)}; median {statistics.median(r['solved_at'] for r in solved):,.0f}"
                  f" steps, {medians[name]:.2f} s to solve; "
                  f"{statistics.median(r['steps'] / r['seconds'] for r in rs):,.0f} steps/s")
        else:
            print(f"{name}: solved 0/{len(rs)}")
    if len(medians) == 2:
        ratio = medians["course_lib cartpole_fast"] / medians["SB3 PPO defaults"]
        print(f"ratio course_lib / SB3 of the median wall time to solve: {ratio:.2f} (target <= 0.33)")


if __name__ == "__main__":
    main()
