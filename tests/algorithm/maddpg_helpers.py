"""Helpers for the MADDPG algorithm tests: small configs, joint batches, a scripted env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from ray_maddpg.maddpg import MADDPGConfig
from ray_maddpg.maddpg.maddpg import random_train_batch

torch.set_num_threads(1)


def small_config(
    scenario: str = "simple_spread", env_options: dict | None = None, **training
) -> MADDPGConfig:
    """A config that learns after a few hundred steps with small batches (fast tests). Its envs
    step mpe2 unless ``env_options`` name another backend (the batched runner has its own tests)."""
    settings = dict(num_steps_sampled_before_learning_starts=200, train_batch_size_per_learner=64)
    settings.update(training)
    env_config = {"scenario": scenario, "max_cycles": 25, "backend": "mpe2", **(env_options or {})}
    return (
        MADDPGConfig()
        .environment("mpe2", env_config=env_config)
        .training(**settings)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=50)
        .reporting(min_sample_timesteps_per_iteration=0)
        .debugging(seed=0)
    )


def joint_batch(config: MADDPGConfig, steps: int = 200, rows: int | None = None):
    """A train batch from real env steps (random actions), aligned across modules."""
    return random_train_batch(config, steps, rows or config.train_batch_size_per_learner)


def built_learner(config: MADDPGConfig):
    learner = config.build_learner()
    learner.build()
    return learner


class ScriptedEnv:
    """Two teams listed in unsorted order; every observation encodes the step index.

    ``obs[agent][0] == step``, ``obs[agent][1] == agent's position in sorted order``, so a
    joint row can be checked for alignment and order.
    """

    listed_agents = ["zeta_0", "alpha_1", "alpha_0"]

    def __init__(self, config=None):
        config = dict(config or {})
        self.max_cycles = int(config.get("max_cycles", 5))
        wide = int(config.get("wide", 4))
        self.possible_agents = list(self.listed_agents)
        self.observation_spaces = {
            a: gym.spaces.Box(-np.inf, np.inf, (wide if a.startswith("zeta") else 3,), np.float32)
            for a in self.possible_agents
        }
        self.action_spaces = {a: gym.spaces.Discrete(2) for a in self.possible_agents}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)
        self.step_index = 0

    def _obs(self):
        out = []
        for i, aid in enumerate(sorted(self.possible_agents)):
            o = np.zeros(self.observation_spaces[aid].shape, np.float32)
            o[0], o[1] = self.step_index, i
            out.append(o)
        return out

    def reset_joint(self, seed=None):
        self.step_index = 0
        return self._obs()

    def step_joint(self, actions):
        self.step_index += 1
        rewards = np.full(3, float(self.step_index), np.float32)
        return self._obs(), rewards, False, self.step_index >= self.max_cycles

    def close(self):
        pass
