"""Micro-benchmarks of the sampler's building blocks (single process, 1 torch thread).

- env steps/s: raw mpe2 ``parallel_env`` vs ``MPEMultiAgentEnv.step`` (dict API) vs
  ``MPEMultiAgentEnv.step_joint`` (lists), random discrete actions, 1 env.
- actor latency: ``JointActors`` (stacked weights, one ``baddbmm`` per layer) vs a Python loop
  over the agents' MLPs, 3 agents x 8 envs, simple_spread sizes.

Usage: ``.venv/bin/python bench/components.py [--steps 20000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from mpe2 import simple_spread_v3

from ray_maddpg.envs import make_env
from ray_maddpg.maddpg.core import MLP, JointActors


def raw_mpe2_steps_per_s(steps: int) -> float:
    env = simple_spread_v3.parallel_env()
    env.reset(seed=0)
    agents, rng = list(env.possible_agents), np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step({a: int(rng.integers(5)) for a in agents})
        if not env.agents:
            env.reset()
    return steps / (time.perf_counter() - start)


def wrapper_steps_per_s(steps: int) -> float:
    env = make_env("simple_spread")
    env.reset(seed=0)
    agents, rng = env.possible_agents, np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminateds, truncateds, _ = env.step({a: int(rng.integers(5)) for a in agents})
        if terminateds["__all__"] or truncateds["__all__"]:
            env.reset()
    return steps / (time.perf_counter() - start)


def wrapper_joint_steps_per_s(steps: int) -> float:
    env = make_env("simple_spread")
    env.reset_joint(seed=0)
    n, rng = len(env.possible_agents), np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated = env.step_joint([int(rng.integers(5)) for _ in range(n)])
        if terminated or truncated:
            env.reset_joint()
    return steps / (time.perf_counter() - start)


def actor_latency_us(calls: int, agents: int = 3, envs: int = 8, obs_dim: int = 18, act_dim: int = 5) -> dict:
    actors = [MLP(obs_dim, act_dim) for _ in range(agents)]
    joint = JointActors(actors)
    stacked = torch.randn(agents, envs, obs_dim)
    per_agent = list(stacked.unbind(0))

    def naive():
        with torch.no_grad():
            return [actor(o) for actor, o in zip(actors, per_agent, strict=True)]

    def timed(fn) -> float:
        for _ in range(100):
            fn()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls * 1e6

    return {
        "naive_loop_us": timed(naive),
        "joint_from_list_us": timed(lambda: joint(per_agent)),
        "joint_from_stacked_us": timed(lambda: joint(stacked)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = {"raw_mpe2_parallel_env": [], "wrapper_step": [], "wrapper_step_joint": []}
    latency = {"naive_loop_us": [], "joint_from_list_us": [], "joint_from_stacked_us": []}
    for _ in range(args.repeats):
        runs["raw_mpe2_parallel_env"].append(raw_mpe2_steps_per_s(args.steps))
        runs["wrapper_step"].append(wrapper_steps_per_s(args.steps))
        runs["wrapper_step_joint"].append(wrapper_joint_steps_per_s(args.steps))
        for key, value in actor_latency_us(args.calls).items():
            latency[key].append(value)
    raw = runs["raw_mpe2_parallel_env"]
    naive = latency["naive_loop_us"]
    result = {
        "env_steps_per_s_median": {k: round(statistics.median(v)) for k, v in runs.items()},
        # Per-repeat ratios are steadier than ratios of medians on a shared machine.
        "wrapper_speed_over_raw_median": {
            k: round(statistics.median(w / r for w, r in zip(v, raw, strict=True)), 2)
            for k, v in runs.items()
            if k != "raw_mpe2_parallel_env"
        },
        "actor_speedup_over_naive_loop_median": {
            k: round(statistics.median(n / j for n, j in zip(naive, v, strict=True)), 2)
            for k, v in latency.items()
            if k != "naive_loop_us"
        },
        "actor_latency_3_agents_8_envs_median": {
            k: round(statistics.median(v), 1) for k, v in latency.items()
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
