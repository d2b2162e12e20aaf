"""The MADDPG TorchLearner: losses over all agents at once, one backward per loss.

``compute_losses`` sees every module's batch. The rows of all modules are aligned (row b
of every module's batch is the same env step), so agent i's centralized critic can take
every agent's observation and action. Each module's batch holds its agents along axis 1:
``obs`` (B, k, obs_dim), ``actions`` (B, k, act_dim), ``rewards`` / ``terminateds``
(B, k), with k = 1 unless the module is shared by a team.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.typing import ModuleID, ParamDict, TensorType

from ray_maddpg.maddpg import core

ACTOR = "actor"
CRITIC = "critic"
NUM_UPDATES = "maddpg_num_updates"
"""Key in ``timesteps``: how many updates the algorithm has run before this ``update()`` call."""


class MADDPGTorchLearner(TorchLearner):
    def build(self) -> None:
        super().build()
        # (module_id, "actor" | "critic") -> in-graph loss, consumed by compute_gradients.
        self._temp_losses: dict[tuple[ModuleID, str], TensorType] = {}
        self._next_update = 0
        self._update_actor = True

    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        module = self._module[module_id]
        for name, net, lr in (
            (ACTOR, module.actor, config.actor_lr),
            (CRITIC, module.critic, config.critic_lr),
        ):
            params = self.get_parameters(net)
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=torch.optim.Adam(params),
                params=params,
                lr_or_lr_schedule=lr,
            )

    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        # One `update()` call may hold several updates (one per minibatch); count them.
        self._next_update = timesteps.get(NUM_UPDATES, 0)

    def compute_losses(self, *, fwd_out: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        """Split every module's batch into per-agent tensors (the joint view all critics
        need), then let RLlib's per-module loop call ``compute_loss_for_module``."""
        cfg = self.config
        # TD3's delayed policy update: the actors (and all targets) move every
        # `policy_delay`-th update only.
        self._update_actor = self._next_update % cfg.policy_delay == 0
        joint = {key: {} for key in ("obs", "actions", "next_obs", "next_actions", "rewards", "terminateds")}
        with torch.no_grad():
            for mid in batch:
                module, b = self.module[mid].unwrapped(), batch[mid]
                next_act = core.actor_action(
                    module.target_actor(b[Columns.NEXT_OBS]),
                    module.discrete,
                    temperature=cfg.gumbel_temperature,
                )
                if cfg.target_noise > 0 and not module.discrete:
                    next_act = core.target_policy_smoothing(next_act, cfg.target_noise, cfg.target_noise_clip)
                for j, aid in enumerate(module.agents):
                    joint["obs"][aid] = b[Columns.OBS][:, j]
                    joint["actions"][aid] = b[Columns.ACTIONS][:, j]
                    joint["next_obs"][aid] = b[Columns.NEXT_OBS][:, j]
                    joint["next_actions"][aid] = next_act[:, j]
                    joint["rewards"][aid] = b[Columns.REWARDS][:, j]
                    joint["terminateds"][aid] = b[Columns.TERMINATEDS][:, j]
        self._joint = joint
        # Every module gets a (here empty) forward output, so RLlib's loop visits it.
        return super().compute_losses(fwd_out={mid: fwd_out.get(mid, {}) for mid in batch}, batch=batch)

    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: dict[str, Any], fwd_out
    ) -> TensorType:
        """Critic and actor losses of every agent this module serves (paper eqs. 5-6)."""
        module, joint = self.module[module_id].unwrapped(), self._joint
        obs, actions = joint["obs"], joint["actions"]
        critic_losses, actor_losses, q_means, target_means = [], [], [], []
        policy_out = module.actor(batch[Columns.OBS]) if self._update_actor else None
        for j, aid in enumerate(module.agents):
            with torch.no_grad():
                next_q = module.target_critic(
                    self._critic_input(module, j, joint["next_obs"], joint["next_actions"])
                )
                target = core.critic_target(
                    joint["rewards"][aid], next_q, joint["terminateds"][aid], config.gamma
                )
            q = module.critic(self._critic_input(module, j, obs, actions))
            critic_losses.append(core.critic_loss(q, target))
            q_means.append(q[0].mean())
            target_means.append(target.mean())
            if policy_out is not None:
                out = policy_out[:, j]
                own = core.actor_action(out, module.discrete, temperature=config.gumbel_temperature)
                # Agent i's action comes from its actor, the others' from the buffer.
                q_pi = module.critic(self._critic_input(module, j, obs, {**actions, aid: own}))[0]
                actor_losses.append(core.actor_loss(q_pi, out, config.actor_logit_penalty))
        critic = torch.stack(critic_losses).mean()
        self._temp_losses[(module_id, CRITIC)] = critic
        self.metrics.log_value((module_id, "critic_loss"), critic, window=1)
        self.metrics.log_value((module_id, "q_mean"), torch.stack(q_means).mean(), window=1)
        self.metrics.log_value((module_id, "target_q_mean"), torch.stack(target_means).mean(), window=1)
        if not actor_losses:
            return critic
        actor = torch.stack(actor_losses).mean()
        self._temp_losses[(module_id, ACTOR)] = actor
        self.metrics.log_value((module_id, "actor_loss"), actor, window=1)
        return critic + actor

    def _critic_input(self, module, j: int, obs: dict, actions: dict) -> torch.Tensor:
        """Agent ``module.agents[j]``'s critic input: all agents (centralized) or its own (local)."""
        aid = module.agents[j]
        if module.critic_kind == "centralized":
            x = core.centralized_critic_input(
                [obs[a] for a in module.all_agents], [actions[a] for a in module.all_agents]
            )
        else:
            x = core.local_critic_input(obs[aid], actions[aid])
        if len(module.agents) > 1:
            agent_id = torch.zeros(x.shape[0], len(module.agents), dtype=x.dtype, device=x.device)
            agent_id[:, j] = 1.0
            x = torch.cat([x, agent_id], dim=-1)
        return x

    def compute_gradients(self, loss_per_module: dict[ModuleID, TensorType], **kwargs) -> ParamDict:
        """One backward per loss (as in SAC's learner): critic losses reach only critic
        parameters and actor losses reach only actor parameters."""
        for optim in self._optimizer_parameters:
            optim.zero_grad(set_to_none=True)
        grads = {}
        for (mid, name), loss in self._temp_losses.items():
            optim = self.get_optimizer(mid, name)
            params = self.filter_param_dict_for_optimizer(self._params, optim)
            param_grads = torch.autograd.grad(loss, list(params.values()))
            grads.update(zip(params.keys(), param_grads, strict=True))
        self._temp_losses = {}
        return grads

    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        # Step only the optimizers that got gradients (the actor's skip delayed updates).
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for mid, names in self._module_optimizers.items():
            for name in names:
                optim = self.get_optimizer(mid, name)
                if any(p.grad is not None for group in optim.param_groups for p in group["params"]):
                    optim.step()
        # Polyak after every update (the reference code's schedule), and with TD3's
        # delay only when the actors moved.
        if self._update_actor:
            for mid in self.module.keys():
                for main, target in self.module[mid].unwrapped().get_target_network_pairs():
                    core.soft_update(target, main, self.config.tau)
        self._next_update += 1
