"""The MADDPG TorchLearner: every agent's critic and actor update, on one joint batch.

RLlib's default update computes all losses, then all gradients, then applies them, so the
actor would follow the critic from before the same update. openai/maddpg trains the critic
first and the actor against the updated critic; ``sequential_update`` (the default) does that,
with one backward per loss and RLlib's own gradient clipping per optimizer in both phases.

The rows of all modules' batches are aligned (row b of every module's batch is the same env
step), so agent i's centralized critic can take every agent's observation and action. Each
module's batch holds its agents along axis 1: ``obs`` (B, k, obs_dim), ``actions``
(B, k, act_dim), ``rewards`` / ``terminateds`` (B, k), with k = 1 unless a team shares it.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core import COMPONENT_OPTIMIZER
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    MODULE_TRAIN_BATCH_SIZE_MEAN,
    NUM_ENV_STEPS_TRAINED,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.typing import ModuleID, ResultDict, TensorType

from ray_maddpg.maddpg import core
from ray_maddpg.maddpg.batch import JointBatch
from ray_maddpg.maddpg.fused import FusedMADDPG
from ray_maddpg.memory import keep_freed_memory

ACTOR = "actor"
CRITIC = "critic"
# The per-agent columns both updates read: our name -> RLlib's column.
AGENT_COLUMNS = {
    "obs": Columns.OBS,
    "actions": Columns.ACTIONS,
    "next_obs": Columns.NEXT_OBS,
    "rewards": Columns.REWARDS,
    "terminated": Columns.TERMINATEDS,
}
NUM_UPDATES = "maddpg_num_updates"
"""Key in ``timesteps``: how many updates the algorithm has run before this ``update()`` call."""


class MADDPGTorchLearner(TorchLearner):
    def build(self) -> None:
        keep_freed_memory()  # a third of a CPU update was page faults without it (memory.py)
        super().build()
        self._next_update = 0
        # `fused_update`: the same update as `_per_module_update`, with every agent's networks
        # stacked (maddpg/fused.py); the modules stay the source of truth for weights and state.
        self._fused = (
            FusedMADDPG.from_modules(self._modules(), self.config) if self.config.fused_update else None
        )

    def _modules(self) -> dict[ModuleID, Any]:
        return {mid: self.module[mid].unwrapped() for mid in self.module.keys()}

    def _optimizers(self) -> dict[ModuleID, dict[str, torch.optim.Optimizer]]:
        return {
            mid: {name: self.get_optimizer(mid, name) for name in (ACTOR, CRITIC)}
            for mid in self.module.keys()
        }

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        # The weights are written back after every update() call; Adam's state only when asked
        # for (checkpoints), not for the env runners' weights each training step.
        if self._fused is not None and self._check_component(COMPONENT_OPTIMIZER, components, not_components):
            self._fused.write_back(self._modules(), self._optimizers())
        return super().get_state(components, not_components=not_components, **kwargs)

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if self._fused is not None:
            self._fused.load_from(self._modules(), self._optimizers())

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

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        # Once per `update()` call, not per minibatch: nothing reads the modules' weights between
        # the minibatches, and the copy costs about a fifth of a small update.
        if self._fused is not None:
            self._fused.write_back(self._modules())
        super().after_gradient_based_update(timesteps=timesteps)

    def update_joint(
        self, batch: JointBatch, *, minibatch_size: int, timesteps: dict[str, Any]
    ) -> ResultDict:
        """The fused updates of ``update(batch=joint_train_batch(batch, layout), minibatch_size=...,
        num_epochs=1)``, straight from a replay sample: one update per block of ``minibatch_size``
        consecutive rows, the same numbers, without RLlib's per-minibatch work (a
        ``MultiAgentBatch`` sliced per module, steps and metrics logged per minibatch): about 2 ms
        of a 20 ms update at batch 1024 on a 2-core CPU (docs/results.md)."""
        if self._fused is None:
            raise ValueError("update_joint runs the fused update only (fused_update: true)")
        num_updates = len(batch) // minibatch_size
        if num_updates < 1:
            raise ValueError(f"a batch of {len(batch)} rows holds no minibatch of {minibatch_size}")
        self.before_gradient_based_update(timesteps=timesteps)
        self._weights_seq_no += 1
        tensors = batch.to_torch(self.device)
        latest: dict[ModuleID, dict[str, torch.Tensor]] = {mid: {} for mid in self.module.keys()}
        for u in range(num_updates):
            rows = slice(u * minibatch_size, (u + 1) * minibatch_size)
            self._fused.num_updates = self._next_update
            metrics = self._fused.update(tensors.map(lambda x, rows=rows: x[rows]))
            self._next_update += 1
            for mid, values in metrics.items():
                latest[mid].update(values)  # an update without an actor step keeps the last actor_loss
        # Logged once per call, not per update: with window 1, the same values remain.
        self._log_fused_metrics(latest)
        for mid, loss in _total_losses(metrics).items():
            self.metrics.log_value((mid, self.TOTAL_LOSS_KEY), loss, window=1)
        self._log_trained_steps(minibatch_size, num_updates)
        self.after_gradient_based_update(timesteps=timesteps)
        return self.metrics.reduce()

    def _log_fused_metrics(self, metrics: dict[ModuleID, dict[str, torch.Tensor]]) -> None:
        for mid, values in metrics.items():
            for name, value in values.items():
                self.metrics.log_value((mid, name), value, window=1)

    def _log_trained_steps(self, minibatch_size: int, num_updates: int) -> None:
        """``Learner._log_steps_trained_metrics`` for ``num_updates`` minibatches at once, the same
        totals (RLlib counts every minibatch as the whole sample's env steps)."""
        rows = minibatch_size * num_updates
        for mid in self.module.keys():
            self.metrics.log_value((mid, WEIGHTS_SEQ_NO), self._weights_seq_no, window=1)
            self.metrics.log_value((mid, MODULE_TRAIN_BATCH_SIZE_MEAN), minibatch_size, reduce="mean")
            self._log_count(mid, NUM_MODULE_STEPS_TRAINED, NUM_MODULE_STEPS_TRAINED_LIFETIME, rows, None)
            self._log_count(ALL_MODULES, NUM_MODULE_STEPS_TRAINED, NUM_MODULE_STEPS_TRAINED_LIFETIME, rows)
        self._log_count(
            ALL_MODULES, NUM_ENV_STEPS_TRAINED, NUM_ENV_STEPS_TRAINED_LIFETIME, rows * num_updates
        )

    def _log_count(
        self, scope: str, key: str, lifetime_key: str, value: int, throughput: bool | None = True
    ) -> None:
        """``value`` added to this call's total and to the run's, as RLlib logs its step counts
        (the lifetime total always with its throughput; ``throughput`` None: RLlib's default)."""
        self.metrics.log_value((scope, key), value, reduce="sum", with_throughput=throughput)
        self.metrics.log_value((scope, lifetime_key), value, reduce="lifetime_sum", with_throughput=True)

    def _uncompiled_update(self, batch: dict[str, Any], **kwargs):
        """One MADDPG update of every module: critics, actors, then the target networks."""
        if self._fused is None:
            with core.matmul_precision(self.config.matmul_dtype, self.device):
                return self._per_module_update(batch)
        return self._fused_update(batch)  # FusedMADDPG applies matmul_dtype itself

    def _fused_update(self, batch: dict[str, Any]):
        """``FusedMADDPG.update`` on the batch's per-agent columns (the weights reach the modules
        in ``after_gradient_based_update``)."""
        self._fused.num_updates = self._next_update
        metrics = self._fused.update_columns(self._per_agent(batch))
        self._next_update += 1
        self._log_fused_metrics(metrics)
        return {}, _total_losses(metrics), {}

    def _per_module_update(self, batch: dict[str, Any]):
        """The update module by module, each agent's networks on their own."""
        cfg = self.config
        # TD3's delayed policy update: the actors (and all targets) move every
        # `policy_delay`-th update only.
        update_actor = self._next_update % cfg.policy_delay == 0
        joint = self._joint_view(batch)
        critic_losses = {mid: self._critic_loss(mid, joint) for mid in batch}
        actor_losses: dict[ModuleID, TensorType] = {}
        if not cfg.sequential_update:
            # RLlib's order: every gradient from the same (pre-update) networks, then all steps.
            if update_actor:
                actor_losses = {mid: self._actor_loss(mid, batch[mid], joint) for mid in batch}
            grads = {**self._gradients(critic_losses, CRITIC), **self._gradients(actor_losses, ACTOR)}
            self._apply(grads, {CRITIC: critic_losses, ACTOR: actor_losses})
        else:
            self._apply(self._gradients(critic_losses, CRITIC), {CRITIC: critic_losses})
            if update_actor:
                actor_losses = {mid: self._actor_loss(mid, batch[mid], joint) for mid in batch}
                self._apply(self._gradients(actor_losses, ACTOR), {ACTOR: actor_losses})
        # Polyak after every update (the reference code's schedule), and with TD3's
        # delay only when the actors moved.
        if update_actor:
            for mid in self.module.keys():
                for main, target in self.module[mid].unwrapped().get_target_network_pairs():
                    core.soft_update(target, main, cfg.tau)
        self._next_update += 1
        loss_per_module = {mid: critic_losses[mid] + actor_losses.get(mid, 0.0) for mid in batch}
        return {}, loss_per_module, {}

    def compute_loss_for_module(self, *, module_id: ModuleID, config, batch, fwd_out) -> TensorType:
        # A centralized critic needs every module's batch, and the actor step may need the
        # updated critic, so one module's loss alone is never computed.
        raise NotImplementedError("MADDPG computes its losses in `_uncompiled_update`")

    def _per_agent(self, batch: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
        """Every ``AGENT_COLUMNS`` column of the joint batch as {agent id: tensor}."""
        columns = {key: {} for key in AGENT_COLUMNS}
        for mid, b in batch.items():
            for j, aid in enumerate(self.module[mid].unwrapped().agents):
                for key, column in AGENT_COLUMNS.items():
                    columns[key][aid] = b[column][:, j]
        return columns

    def _joint_view(self, batch: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
        """Per-agent tensors of the whole joint batch (what every centralized critic needs),
        with each agent's next action from its target actor."""
        joint = self._per_agent(batch)
        joint["next_actions"] = {}
        cfg = self.config
        with torch.no_grad():
            for mid, b in batch.items():
                module = self.module[mid].unwrapped()
                next_act = module.action_rule.target(module.target_actor(b[Columns.NEXT_OBS]))
                if cfg.target_noise > 0 and module.action_rule.kind == "tanh":
                    next_act = core.target_policy_smoothing(next_act, cfg.target_noise, cfg.target_noise_clip)
                for j, aid in enumerate(module.agents):
                    joint["next_actions"][aid] = next_act[:, j]
        return joint

    def _critic_loss(self, module_id: ModuleID, joint: dict) -> TensorType:
        """Mean TD loss of every agent this module serves (paper eq. 5)."""
        module, cfg = self.module[module_id].unwrapped(), self.config
        losses, q_means, target_means = [], [], []
        for j, aid in enumerate(module.agents):
            with torch.no_grad():
                next_q = module.target_critic(
                    core.critic_input(module, j, joint["next_obs"], joint["next_actions"])
                )
                target = core.critic_target(
                    joint["rewards"][aid], next_q, joint["terminated"][aid], cfg.gamma
                )
            q = module.critic(core.critic_input(module, j, joint["obs"], joint["actions"]))
            losses.append(core.critic_loss(q, target))
            q_means.append(q[0].mean())
            target_means.append(target.mean())
        loss = torch.stack(losses).mean()
        self.metrics.log_value((module_id, "critic_loss"), loss, window=1)
        self.metrics.log_value((module_id, "q_mean"), torch.stack(q_means).mean(), window=1)
        self.metrics.log_value((module_id, "target_q_mean"), torch.stack(target_means).mean(), window=1)
        return loss

    def _actor_loss(self, module_id: ModuleID, batch: dict[str, Any], joint: dict) -> TensorType:
        """Mean policy loss of every agent this module serves (paper eq. 6): agent i's action
        comes from its actor, the other agents' from the buffer."""
        module, cfg = self.module[module_id].unwrapped(), self.config
        policy_out = module.actor(batch[Columns.OBS])
        losses = []
        for j, aid in enumerate(module.agents):
            out = policy_out[:, j]

            def q_of(action, j=j, aid=aid):
                actions = {**joint["actions"], aid: action}
                return module.critic(core.critic_input(module, j, joint["obs"], actions))[0]

            q_pi = module.action_rule.policy_q(out, q_of)
            losses.append(core.actor_loss(q_pi, out, cfg.actor_logit_penalty))
        loss = torch.stack(losses).mean()
        self.metrics.log_value((module_id, "actor_loss"), loss, window=1)
        return loss

    def _gradients(self, losses: dict[ModuleID, TensorType], optimizer_name: str) -> dict:
        """Each loss's gradients w.r.t. the parameters of ``optimizer_name`` ("actor" or
        "critic") only, clipped per optimizer as RLlib does."""
        grads = {}
        for mid, loss in losses.items():
            params = self.filter_param_dict_for_optimizer(
                self._params, self.get_optimizer(mid, optimizer_name)
            )
            grads.update(zip(params.keys(), torch.autograd.grad(loss, list(params.values())), strict=True))
        return self.postprocess_gradients(grads)

    def _apply(self, grads: dict, stepped: dict[str, dict[ModuleID, TensorType]]) -> None:
        """Step the optimizers named in ``stepped`` (optimizer name -> the modules it updates)."""
        for pid, grad in grads.items():
            self._params[pid].grad = grad
        for optimizer_name, modules in stepped.items():
            for mid in modules:
                self.get_optimizer(mid, optimizer_name).step()


def _total_losses(metrics: dict[ModuleID, dict[str, torch.Tensor]]) -> dict[ModuleID, torch.Tensor]:
    """Each module's critic loss plus its actor loss (none on a TD3-delayed update): its total loss."""
    return {mid: values["critic_loss"] + values.get("actor_loss", 0.0) for mid, values in metrics.items()}
