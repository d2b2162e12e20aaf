"""The MADDPG RLModule: one actor, one critic (twin optional) and their target nets.

A module serves one agent (``module_id == agent_id``) or, with parameter sharing, one
team of homogeneous agents. Everything it needs to know about the other agents (the
sorted agent order, every agent's observation and action size) comes in
``model_config``, which ``MADDPGConfig.get_multi_rl_module_spec`` fills from the env.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from ray_maddpg.maddpg import core
from ray_maddpg.maddpg.core import MLP, Critic


class MADDPGTorchRLModule(TorchRLModule, TargetNetworkAPI, InferenceOnlyAPI):
    """Decentralized actor, centralized (or local) critic.

    ``model_config`` keys: ``agents`` (the sorted agent ids this module serves),
    ``all_agents`` (every agent id, sorted), ``obs_dims`` / ``act_dims`` (per agent id),
    ``action_rule`` and ``gumbel_temperature`` (``core.ActionRule``), ``critic``
    ("centralized" or "local"), ``twin_q``, ``actor_hidden``, ``critic_hidden``.
    """

    def setup(self) -> None:
        cfg = self.model_config
        self.agents: list[str] = list(cfg["agents"])
        self.all_agents: list[str] = list(cfg["all_agents"])
        self.action_rule = core.ActionRule(cfg["action_rule"], float(cfg["gumbel_temperature"]))
        self.critic_kind: str = cfg["critic"]
        self.twin_q: bool = bool(cfg["twin_q"])
        obs_dims, act_dims = cfg["obs_dims"], cfg["act_dims"]
        first = self.agents[0]
        self.obs_dim, self.act_dim = int(obs_dims[first]), int(act_dims[first])

        self.actor = MLP(self.obs_dim, self.act_dim, cfg["actor_hidden"])
        if self.inference_only:
            return
        if self.critic_kind == "centralized":
            critic_in = sum(obs_dims[a] + act_dims[a] for a in self.all_agents)
        else:
            critic_in = self.obs_dim + self.act_dim
        # A shared critic must tell its agents apart: append the agent's one-hot index.
        if len(self.agents) > 1:
            critic_in += len(self.agents)
        self.critic_in_dim = critic_in
        self.critic = Critic(critic_in, twin=self.twin_q, hidden=cfg["critic_hidden"])
        self.make_target_networks()

    # TargetNetworkAPI
    def make_target_networks(self) -> None:
        self.target_actor = make_target_network(self.actor)
        self.target_critic = make_target_network(self.critic)

    def get_target_network_pairs(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        return [(self.actor, self.target_actor), (self.critic, self.target_critic)]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.target_actor(batch[Columns.OBS])}

    # InferenceOnlyAPI: env runners only need the actor.
    def get_non_inference_attributes(self) -> list[str]:
        return ["critic", "target_actor", "target_critic"]

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        # Raw actor outputs: logits (discrete) or pre-tanh values (continuous).
        return {Columns.ACTION_DIST_INPUTS: self.actor(batch[Columns.OBS])}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        # The losses need every module's batch at once, so the learner runs the
        # networks itself in `compute_losses`.
        return {}
