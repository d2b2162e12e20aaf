"""Load trained actors from a MADDPG checkpoint without a Ray cluster (for evaluate and render).

A checkpoint written by ``MADDPG.save_to_path`` holds the algorithm's config in
``class_and_ctor_args.pkl`` and every module's weights under
``learner_group/learner/rl_module/<module_id>/``. Both are read straight from disk.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from ray_maddpg.errors import ConfigError

CTOR_FILE = "class_and_ctor_args.pkl"
MODULE_DIR = Path("learner_group", "learner", "rl_module")


class TrainedPolicy:
    """Every agent's actor, acting greedily (``core.ActionRule.greedy``, no exploration noise), or
    with ``sampled`` as it acted in training (``ActionRule.explore``, seeded by ``seed``), which is
    how openai/maddpg's benchmark runs evaluate."""

    def __init__(self, config: AlgorithmConfig, module, *, sampled: bool = False, seed: int = 0):
        self.config = config
        self.sampled = sampled
        self._rng = np.random.default_rng(seed)
        self._torch_rng = torch.Generator().manual_seed(seed)
        self._noise_std = config.exploration_noise_final or config.exploration_noise
        self.env_config: dict[str, Any] = dict(config.env_config or {})
        self.scenario: str = self.env_config.get("scenario", "simple_spread")
        layout = config.agent_layout()
        self.agent_ids: list[str] = list(layout.agents)
        module_of = layout.module_of
        self._actors = {aid: module[module_of[aid]].actor for aid in self.agent_ids}
        self._rules = {aid: module[module_of[aid]].action_rule for aid in self.agent_ids}

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Actions for the agents in ``obs``: ``int`` (one-hot rules) or a [-1, 1] array, which is
        what ``MPEMultiAgentEnv.step`` takes."""
        actions = {}
        for aid, o in obs.items():
            out = self._actors[aid](torch.as_tensor(np.asarray(o, np.float32)).unsqueeze(0))[0]
            rule = self._rules[aid]
            if self.sampled:
                action = rule.explore(
                    out, noise_std=self._noise_std, rng=self._rng, generator=self._torch_rng
                )
            else:
                action = rule.greedy(out)
            env_action = rule.to_env(action)
            actions[aid] = int(env_action) if rule.one_hot else env_action.numpy()
        return actions


def load_policy(checkpoint_path: str | Path, *, sampled: bool = False, seed: int = 0) -> TrainedPolicy:
    """The joint policy stored in a MADDPG checkpoint directory: greedy, or ``sampled``."""
    from ray_maddpg.maddpg.maddpg import MADDPG

    path = Path(checkpoint_path)
    if not path.is_dir():
        raise ConfigError([("checkpoint", f"{path} is not a directory")])
    ctor_file, module_dir = path / CTOR_FILE, path / MODULE_DIR
    if not ctor_file.is_file() or not module_dir.is_dir():
        raise ConfigError(
            [("checkpoint", f"{path} is not a MADDPG checkpoint (expected {CTOR_FILE} and {MODULE_DIR}/)")]
        )
    with ctor_file.open("rb") as f:
        ctor = pickle.load(f)
    if not (isinstance(ctor["class"], type) and issubclass(ctor["class"], MADDPG)):
        raise ConfigError([("checkpoint", f"{path} is a {ctor['class']!r} checkpoint, not MADDPG")])
    config = AlgorithmConfig.from_state(ctor["ctor_args_and_kwargs"][0][0])
    module = config.get_multi_rl_module_spec(inference_only=True).build()
    module.restore_from_path(module_dir)
    for submodule in module.values():  # MultiRLModule itself has no eval()
        submodule.eval()
    return TrainedPolicy(config, module, sampled=sampled, seed=seed)
