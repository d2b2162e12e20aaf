"""A fused MADDPG update: every agent's networks run as a few batched matmuls (plain torch, no Ray).

The per-module learner (``torch/maddpg_torch_learner.py``) runs each module's actor and critic as
small networks of their own, so one update is hundreds of small kernels. Here the networks of one
kind (actor or critic) whose layer shapes match form a *group*; a group's weights are stacked to
(G, in, out), each layer is one ``torch.baddbmm`` for the whole group, and one forward and one
backward compute every module's critic loss (then, separately, every actor loss). The math is the
per-module learner's (Lowe et al. 2017, eqs. 5-6; the TD3 tricks opt-in), for agent i:

    a'_j    = mu'_j(o'_j) as ``ActionRule.target`` forms it (+ TD3 smoothing for tanh actions)
    y_i     = r_i + gamma * (1 - terminated_i) * min_t Q'_i,t(o'_1..o'_N, a'_1..a'_N)
    L(Q_i)  = sum_t mean((Q_i,t(o_1..o_N, a_1..a_N) - y_i)^2)              (twins t add)
    L(mu_i) = -mean(Q_i,1(o_1..o_N, a_1..mu_i(o_i)..a_N)) + penalty * mean(out_i^2)
    theta'  <- tau * theta + (1 - tau) * theta'

A module's loss is the mean over the agents it serves (a team that shares parameters); the
critic sees [o_1..o_N, a_1..a_N] (centralized) or [o_i, a_i] (local), plus the agent's one-hot
index in a shared critic. What stays per module is what RLlib does per optimizer: the gradient's
global norm is clipped per module and per network (``clip_per_network``). Adam is elementwise, so
one Adam over the stacked tensors steps each module's slice exactly as its own Adam would.

Random draws (Gumbel noise, target smoothing) are made module by module, in sorted module order
and with the per-module learner's shapes, so both paths, seeded alike, draw the same noise.

Speed: on one CPU thread the update is bound by its arithmetic and by memory traffic over
(G, B, 64) activations, not by the number of kernels, so stacking alone gains little there. What
gains more is work left out: the actor loss's critic input differs from the batch's only in the
agent's own action, so its first layer is the batch input's plus a small correction
(``_policy_q``), with no (B, D) input per agent and no backward through that (D, 64) layer; and
a critic's one-column output layer is a product and a sum, not a matmul.

The RLlib module stays the source of truth: ``FusedMADDPG.from_modules`` copies its networks in,
``write_back`` copies the weights (and, given the optimizers, Adam's state) out, ``load_from``
reads them again, e.g. after a checkpoint restore.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from ray_maddpg.compiling import CompiledOrEager
from ray_maddpg.maddpg import core
from ray_maddpg.maddpg.batch import JointBatch

ACTOR = "actor"
CRITIC = "critic"
Metrics = dict[str, dict[str, torch.Tensor]]


@dataclass(frozen=True)
class FusedSettings:
    """The update's hyperparameters; names and defaults are ``MADDPGConfig``'s."""

    gamma: float = 0.95  # discount
    tau: float = 0.01  # Polyak rate of the target networks
    actor_lr: float = 1e-4  # Adam learning rate of every actor
    critic_lr: float = 1e-3  # Adam learning rate of every critic
    grad_clip: float | None = 0.5  # global gradient norm per module and network (None or 0: off)
    actor_logit_penalty: float = 1e-3  # weight of mean(actor output^2) in the actor loss
    policy_delay: int = 1  # MATD3: actors and targets move every n-th update
    target_noise: float = 0.0  # MATD3: target policy smoothing std (tanh actions)
    target_noise_clip: float = 0.5  # MATD3: clip of that noise
    sequential_update: bool = True  # critic step, then the actors against the updated critics
    matmul_dtype: str = "float32"  # float32, or bfloat16 under torch.autocast (core.matmul_precision)

    @classmethod
    def from_config(cls, config: Any) -> FusedSettings:
        """The settings of a ``MADDPGConfig``, or of any object with these attributes."""
        clip_by = getattr(config, "grad_clip_by", "global_norm")
        if clip_by != "global_norm":
            raise ValueError(f"the fused update clips by global norm only (grad_clip_by={clip_by!r})")
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


def plain_module(
    agents: Sequence[str],
    all_agents: Sequence[str],
    obs_dims: Mapping[str, int],
    act_dims: Mapping[str, int],
    *,
    critic_kind: str = "centralized",
    twin_q: bool = False,
    action_rule: str = "expected",
    temperature: float = 1.0,
    actor_hidden: Sequence[int] = (64, 64),
    critic_hidden: Sequence[int] = (64, 64),
    device: str | torch.device | None = None,
) -> SimpleNamespace:
    """A stand-in for ``MADDPGTorchRLModule`` without Ray: its networks, shaped as ``setup`` shapes
    them, and what ``FusedMADDPG`` reads of it (``agents`` the ids it serves, ``all_agents`` every
    id, sorted). The targets start as copies of the networks."""
    first = agents[0]
    if critic_kind == "centralized":
        critic_in = sum(obs_dims[a] + act_dims[a] for a in all_agents)
    else:
        critic_in = obs_dims[first] + act_dims[first]
    critic_in += len(agents) if len(agents) > 1 else 0  # a shared critic's one-hot agent index
    actor = core.MLP(obs_dims[first], act_dims[first], actor_hidden).to(device)
    critic = core.Critic(critic_in, twin_q, critic_hidden).to(device)
    return SimpleNamespace(
        actor=actor,
        critic=critic,
        target_actor=copy.deepcopy(actor),
        target_critic=copy.deepcopy(critic),
        agents=list(agents),
        all_agents=list(all_agents),
        action_rule=core.ActionRule(action_rule, temperature),
        critic_kind=critic_kind,
    )


def plain_modules(
    obs_dims: Mapping[str, int], act_dims: Mapping[str, int], **kwargs: Any
) -> dict[str, SimpleNamespace]:
    """One ``plain_module`` per agent (no sharing; module id = agent id), in sorted agent order."""
    agents = sorted(obs_dims)
    return {aid: plain_module([aid], agents, obs_dims, act_dims, **kwargs) for aid in agents}


class StackedMLP:
    """n MLPs of one shape (``core.MLP``) as stacked leaf tensors: one batched matmul per layer.

    ``params`` follow an MLP's ``parameters()`` order: a layer's weight as (n, in, out) (the
    transpose of ``nn.Linear.weight``), its bias as (n, 1, out). ``network(k)`` gives network k's
    views of them in the ``nn.Linear`` layout.
    """

    def __init__(self, mlps: Sequence[nn.Sequential], requires_grad: bool):
        signature = core.layer_signature(mlps[0])
        if signature is None or any(core.layer_signature(m) != signature for m in mlps):
            raise ValueError("stacked networks must be MLPs of one shape (nn.Linear layers with biases)")
        self.shapes = [p.shape for p in mlps[0].parameters()]
        with torch.no_grad():
            self.params = [
                torch.stack([_as_matrix(p) for p in ps]).contiguous().requires_grad_(requires_grad)
                for ps in zip(*(m.parameters() for m in mlps), strict=True)
            ]
        # Per layer of the MLP: its (weight, bias) if it is linear, else the activation module.
        linear = iter(zip(self.params[::2], self.params[1::2], strict=True))
        self.layers = [next(linear) if isinstance(layer, nn.Linear) else layer for layer in mlps[0]]

    def __call__(
        self,
        x: torch.Tensor,
        nets: slice | torch.Tensor = slice(None),
        start: int = 0,
        stop: int | None = None,
    ) -> torch.Tensor:
        """Layers ``start:stop`` (default all): (n, rows, in) in, (n, rows, out) out, network k on
        x[k]; ``nets`` (a slice or an index tensor) picks some of the networks."""
        for layer in self.layers[start:stop]:
            if isinstance(layer, tuple):
                x = _linear(x, layer[0][nets], layer[1][nets])
            elif type(layer) is nn.ReLU:
                x = x.relu_()  # in place: one pass less over a (G, B, 64) tensor
            else:
                x = layer(x)
        return x

    def network(self, k: int, tensors: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Network k's slices of ``tensors`` (default: the weights; or e.g. Adam's moments, shaped
        like them) as views in the ``nn.Linear`` layout, in ``parameters()`` order."""
        tensors = self.params if tensors is None else tensors
        return [t[k].t().reshape(shape) for t, shape in zip(tensors, self.shapes, strict=True)]


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x @ weight + bias for stacked (n, rows, in) and (n, in, out)."""
    if weight.shape[-1] == 1:
        # A critic's output: on CPU a product and a sum beat a matmul one column wide (both ways).
        return (x * weight.transpose(1, 2)).sum(dim=-1, keepdim=True) + bias
    return torch.baddbmm(bias, x, weight)


def _as_matrix(param: torch.Tensor) -> torch.Tensor:
    """An ``nn.Linear`` weight (out, in) as (in, out), a bias (out,) as (1, out)."""
    return param.reshape(param.shape[0], -1).t()


def clip_per_network(grads: Sequence[torch.Tensor], num_networks: int, max_norm: float) -> torch.Tensor:
    """RLlib's ``clip_gradients(grad_clip_by="global_norm")``, for each network of a stack alone.

    ``grads`` are stacked gradients whose leading axis holds ``num_networks`` networks' slices in
    order (consecutive slices, e.g. twin critics, belong to one network). Per network, in place:
    norm = ||(||g_1||, .., ||g_m||)|| over its parameter tensors, and every gradient is scaled by
    min(1, max_norm / max(norm + 1e-6, max_norm)). Returns the norms before clipping, (num_networks,).
    """
    per_tensor = torch.stack(
        [g.reshape(g.shape[0], -1).norm(dim=1).nan_to_num(neginf=-10e8, posinf=10e8) for g in grads], dim=1
    )
    norms = per_tensor.reshape(num_networks, -1).norm(dim=1).nan_to_num(neginf=-10e8, posinf=10e8)
    coeff = (max_norm / (norms + 1e-6).clamp(min=max_norm)).clamp(max=1.0)
    slices_per_network = grads[0].shape[0] // num_networks
    coeff = coeff.repeat_interleave(slices_per_network)
    for g in grads:
        g.mul_(coeff.view(-1, *([1] * (g.dim() - 1))))
    return norms


def _mlps(module: Any, kind: str, target: bool = False) -> list[nn.Sequential]:
    """A module's networks of ``kind`` as MLPs: the actor, or every Q network of the critic."""
    net = getattr(module, f"target_{kind}" if target else kind)
    return list(net.q_nets) if kind == CRITIC else [net]


class Group:
    """Modules whose ``kind`` networks have one shape and serve the same number of agents.

    Their networks are stacked in module order, each module's ``nets_per_module`` networks (twin
    critics) next to each other: module g owns stack slices g * T .. g * T + T - 1.
    """

    def __init__(self, kind: str, modules: Mapping[str, Any]):
        self.kind = kind
        self.module_ids = list(modules)
        self.modules = list(modules.values())
        self.nets_per_module = len(_mlps(self.modules[0], kind))
        self.agents_per_module = len(self.modules[0].agents)
        self.net = StackedMLP([m for mod in self.modules for m in _mlps(mod, kind)], requires_grad=True)
        self.target = StackedMLP(
            [m for mod in self.modules for m in _mlps(mod, kind, target=True)], requires_grad=False
        )
        # Every row of the critic input is the same [o_1..o_N, a_1..a_N]: one tensor, expanded.
        centralized = all(m.critic_kind == "centralized" for m in self.modules)
        self.one_input = kind == CRITIC and self.agents_per_module == 1 and centralized

    @property
    def size(self) -> int:
        return len(self.modules)

    def slices(self, g: int) -> range:
        """Module g's slices of the stack."""
        return range(g * self.nets_per_module, (g + 1) * self.nets_per_module)

    def rows(self, per_agent: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per-agent (B, ...) tensors as the group's rows: (G, k * B, ...), agent-major in a module."""
        return torch.stack([torch.cat([per_agent[a] for a in m.agents]) for m in self.modules])

    def per_module(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """(G, k * B, d) rows back as each module's (B, k, d) tensor, as its learner batch holds it."""
        k = self.agents_per_module
        return {
            mid: rows[g].unflatten(0, (k, -1)).transpose(0, 1).contiguous()
            for g, mid in enumerate(self.module_ids)
        }


def _groups(kind: str, modules: Mapping[str, Any]) -> list[Group]:
    """The modules (sorted by id) grouped by their ``kind`` networks' shapes and team size."""
    by_key: dict[tuple, dict[str, Any]] = {}
    for mid in sorted(modules):
        signature = tuple(core.layer_signature(m) for m in _mlps(modules[mid], kind))
        if None in signature:
            raise ValueError(f"module {mid!r}: the {kind} must be an MLP of nn.Linear layers with biases")
        by_key.setdefault((signature, len(modules[mid].agents)), {})[mid] = modules[mid]
    return [Group(kind, members) for members in by_key.values()]


def own_action_columns(
    module: Any, aid: str, obs_dims: Mapping[str, int], act_dims: Mapping[str, int]
) -> slice:
    """Where agent ``aid``'s own action sits in its critic input (see ``core.critic_input``)."""
    if module.critic_kind == "centralized":
        before = module.all_agents[: module.all_agents.index(aid)]
        start = sum(obs_dims[a] for a in module.all_agents) + sum(act_dims[a] for a in before)
    else:
        start = obs_dims[aid]
    return slice(start, start + act_dims[aid])


def _own_action_weights(group: Group, obs, actions) -> torch.Tensor:
    """For each row block (module g, agent j): the rows of module g's first critic's first layer
    that read agent j's own action, (G * k, A, 64), zero-padded to the group's widest action A."""
    obs_dims = {a: o.shape[-1] for a, o in obs.items()}
    act_dims = {a: x.shape[-1] for a, x in actions.items()}
    weight = group.net.params[0][:: group.nets_per_module]  # (G, D, H)
    blocks = [
        weight[g, own_action_columns(module, aid, obs_dims, act_dims)]
        for g, module in enumerate(group.modules)
        for aid in module.agents
    ]
    width = max(b.shape[0] for b in blocks)
    return torch.stack([_pad(b.t(), width).t() for b in blocks])


def _pad(x: torch.Tensor, width: int) -> torch.Tensor:
    """Zeros appended to the last axis up to ``width``."""
    return x if x.shape[-1] == width else torch.nn.functional.pad(x, (0, width - x.shape[-1]))


class FusedMADDPG:
    """Every module's MADDPG update as a few batched forward and backward passes.

    ``modules``: module id -> an object with ``actor``, ``critic`` (``core.Critic``),
    ``target_actor``, ``target_critic``, ``agents`` (the sorted agent ids it serves),
    ``all_agents`` (every agent id, sorted), ``action_rule`` (``core.ActionRule``) and
    ``critic_kind`` ("centralized" or "local"), such as ``MADDPGTorchRLModule`` (or, without
    Ray, ``plain_module``).
    """

    def __init__(self, modules: Mapping[str, Any], settings: FusedSettings, compile_losses: bool = False):
        """``compile_losses``: run the two losses (and their backward passes) through
        ``torch.compile``; not a training setting (``MADDPGConfig`` has none), since on this
        2-core CPU it made a paper-budget run slower (docs/results.md), but a lever for GPUs,
        where the update is bound by kernel launches (``bench/device_check.py --compile``)."""
        self.settings = settings
        self.module_ids = sorted(modules)
        self.modules = {mid: modules[mid] for mid in self.module_ids}
        self.agents = list(self.modules[self.module_ids[0]].all_agents)
        served = sorted(a for m in self.modules.values() for a in m.agents)
        if served != sorted(self.agents) or any(list(m.all_agents) != self.agents for m in modules.values()):
            raise ValueError("the modules must serve every agent of all_agents exactly once")
        self.rule_of = {a: m.action_rule for m in self.modules.values() for a in m.agents}
        self.actors = _groups(ACTOR, self.modules)
        self.critics = _groups(CRITIC, self.modules)
        # One fused kernel per stacked tensor (elementwise, as the per-module Adams' loops).
        self.actor_optimizer = torch.optim.Adam(_params(self.actors), lr=settings.actor_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(_params(self.critics), lr=settings.critic_lr, fused=True)
        self.num_updates = 0  # updates done so far: the TD3 delay counts these
        self._critic_loss_of = self._critic_loss
        self._actor_loss_of = self._actor_loss
        if compile_losses:
            # Only the losses: a compiled whole update breaks its graph at autograd.grad and at
            # the fused Adam, and measured no faster than eager.
            self._critic_loss_of = CompiledOrEager(self._critic_loss, "the critic loss", "compile_losses")
            self._actor_loss_of = CompiledOrEager(self._actor_loss, "the actor loss", "compile_losses")

    @classmethod
    def from_modules(cls, modules: Mapping[str, Any], config: Any) -> FusedMADDPG:
        """A fused learner holding copies of ``modules``' weights; ``config``: a ``MADDPGConfig``
        (or anything with ``FusedSettings``' attributes), or ``FusedSettings``."""
        settings = config if isinstance(config, FusedSettings) else FusedSettings.from_config(config)
        return cls(modules, settings)

    # --- the update ---

    def update(self, batch: JointBatch) -> Metrics:
        """One MADDPG update of every module on a joint batch; returns metrics per module id.

        ``batch``: a ``JointBatch`` of tensors (e.g. ``JointReplayBuffer.sample(n).to_torch()``),
        with ``rewards`` and ``terminated`` as (B, N); ``truncated`` is not read.
        """
        return self.update_columns(self._per_agent(batch))

    def update_columns(self, data: Mapping[str, Mapping[str, torch.Tensor]]) -> Metrics:
        """``update`` on a batch already split per agent: ``data[column][agent id]`` for the
        columns ``obs``, ``actions``, ``next_obs``, ``rewards`` and ``terminated`` (as the
        RLlib learner's ``_per_agent`` gives them)."""
        rewards = data["rewards"][self.agents[0]]
        data = {**data, "terminated": {a: t.to(rewards.dtype) for a, t in data["terminated"].items()}}
        with core.matmul_precision(self.settings.matmul_dtype, rewards.device):
            return self._update(data)

    def _update(self, data: Mapping[str, Mapping[str, torch.Tensor]]) -> Metrics:
        update_actors = self.num_updates % self.settings.policy_delay == 0
        metrics: Metrics = {mid: {} for mid in self.module_ids}
        self._set_gradients(self.critics, self._critic_loss_of(data, metrics), metrics)
        if self.settings.sequential_update:
            self.critic_optimizer.step()  # so the actors train against the updated critics
        if update_actors:
            self._set_gradients(self.actors, self._actor_loss_of(data, metrics), metrics)
            self.actor_optimizer.step()
        if not self.settings.sequential_update:
            self.critic_optimizer.step()
        if update_actors:  # Polyak after every update; with TD3's delay only when the actors moved
            self._soft_update()
        self.num_updates += 1
        return metrics

    def _per_agent(self, batch: JointBatch) -> dict[str, dict[str, torch.Tensor]]:
        """The batch's columns as {agent id: tensor}."""

        def split(value) -> dict[str, torch.Tensor]:
            tensors = value.unbind(1) if isinstance(value, torch.Tensor) else value
            if len(tensors) != len(self.agents):
                raise ValueError(f"expected {len(self.agents)} agents' tensors, got {len(tensors)}")
            return dict(zip(self.agents, tensors, strict=True))

        return {
            key: split(getattr(batch, key)) for key in ("obs", "actions", "next_obs", "rewards", "terminated")
        }

    @torch.no_grad()
    def _next_actions(self, next_obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """a'_j for every agent: mu'_j(o'_j) as its ``ActionRule.target`` forms it, with TD3's
        target policy smoothing for tanh actions; noise drawn module by module, as the
        per-module learner does."""
        raw: dict[str, torch.Tensor] = {}
        for group in self.actors:
            raw.update(group.per_module(group.target(group.rows(next_obs))))
        s, actions = self.settings, {}
        for mid in self.module_ids:
            module = self.modules[mid]
            action = module.action_rule.target(raw[mid])
            if s.target_noise > 0 and module.action_rule.kind == "tanh":
                action = core.target_policy_smoothing(action, s.target_noise, s.target_noise_clip)
            actions.update(zip(module.agents, action.unbind(1), strict=True))
        return actions

    def _critic_rows(self, group: Group, obs, actions, repeat: int = 1) -> torch.Tensor:
        """Every row's critic input, (G * repeat, k * B, D), repeated for each module's twins."""
        if group.one_input:
            x = core.centralized_critic_input(
                [obs[a] for a in self.agents], [actions[a] for a in self.agents]
            )
            return x.expand(group.size * repeat, *x.shape)
        rows = [
            torch.cat([core.critic_input(module, j, obs, actions) for j in range(len(module.agents))])
            for module in group.modules
        ]
        x = torch.stack(rows)
        return x.repeat_interleave(repeat, dim=0) if repeat > 1 else x

    def _critic_loss(self, data, metrics: Metrics) -> torch.Tensor:
        """The sum over modules of L(Q_i) (eq. 5), each the mean over the agents a module serves."""
        next_actions = self._next_actions(data["next_obs"])
        total = []
        for group in self.critics:
            G, T = group.size, group.nets_per_module
            with torch.no_grad():
                x_next = self._critic_rows(group, data["next_obs"], next_actions, repeat=T)
                next_q = group.target(x_next).view(G, T, -1).min(dim=1).values
                not_done = 1.0 - group.rows(data["terminated"])
                y = group.rows(data["rewards"]) + self.settings.gamma * not_done * next_q
            q = group.net(self._critic_rows(group, data["obs"], data["actions"], repeat=T)).view(G, T, -1)
            loss = (q - y.unsqueeze(1)).pow(2).mean(dim=2).sum(dim=1)  # (G,): twins add
            total.append(loss.sum())
            _log(metrics, group, critic_loss=loss, q_mean=q[:, 0].mean(dim=1), target_q_mean=y.mean(dim=1))
        return torch.stack(total).sum()

    def _actor_loss(self, data, metrics: Metrics) -> torch.Tensor:
        """The sum over modules of L(mu_i) (eq. 6): agent i's action from its actor, the others'
        from the batch, scored by the first of its critics; a module's loss is its agents' mean."""
        out: dict[str, torch.Tensor] = {}  # raw actor outputs (B, act), with gradient
        penalty: dict[str, torch.Tensor] = {}  # mean(out^2) per module
        for group in self.actors:
            rows = group.net(group.rows(data["obs"]))
            for g, module in enumerate(group.modules):
                out.update(zip(module.agents, rows[g].chunk(group.agents_per_module), strict=True))
            penalty.update(zip(group.module_ids, rows.pow(2).mean(dim=(1, 2)), strict=True))
        own = {}
        for mid in self.module_ids:  # the per-module learner's order of random draws
            module = self.modules[mid]
            own.update({aid: module.action_rule.policy(out[aid]) for aid in module.agents})
        q_mean: dict[str, torch.Tensor] = {}
        for group in self.critics:
            q = self._policy_q(group, data["obs"], data["actions"], own)
            q_mean.update(zip(group.module_ids, q.mean(dim=1), strict=True))
        weight = self.settings.actor_logit_penalty
        losses = torch.stack([-q_mean[mid] + weight * penalty[mid] for mid in self.module_ids])
        for mid, loss in zip(self.module_ids, losses.detach(), strict=True):
            metrics[mid]["actor_loss"] = loss
        return losses.sum()

    def _policy_q(self, group: Group, obs, actions, own) -> torch.Tensor:
        """Q_i,1(o_1..o_N, a_1..mu_i(o_i)..a_N) for every row of ``group``, (G, k * B).

        The first layer is linear in the critic input, and agent i's input differs from the
        batch's only in its own action, so its first layer is the batch input's plus
        (mu_i - a_i) @ W1[the rows that read a_i]: the same numbers without building each
        agent's (B, D) input or back-propagating through the (D, 64) layer.
        """
        first = slice(None, None, group.nets_per_module)  # each module's first critic
        with torch.no_grad():
            z = group.net(self._critic_rows(group, obs, actions), first, stop=1)
            weights = _own_action_weights(group, obs, actions)  # (G * k, A, H)
        width = weights.shape[1]
        agents = [a for module in group.modules for a in module.agents]
        expected = {self.rule_of[a].kind == "expected" for a in agents}
        if expected == {False}:
            delta = [_pad(own[a] - actions[a], width) for a in agents]
            z = z + torch.bmm(torch.stack(delta), weights).view_as(z)
            return group.net(z, first, start=1).squeeze(-1)
        if expected != {True}:
            raise ValueError("one critic group mixes the 'expected' action rule with others")
        return self._expected_policy_q(
            group, z, weights, [actions[a] for a in agents], [own[a] for a in agents]
        )

    def _expected_policy_q(self, group: Group, z, weights, taken, probs) -> torch.Tensor:
        """ActionRule 'expected': sum_k pi_k Q_i,1(.., e_k, ..) for every row of ``group``, (G, k * B).

        e_k @ W1[own rows] is row k of those weights, so agent i's K inputs are the batch's first
        layer minus a_i's part plus one row each. Modules are taken by action width K (e.g.
        simple_world_comm's leader has 20 actions, the others 5), so no row pays for another's K.
        ``z``: (G, k * B, H) first layer of the batch; ``weights``: (G * k, A, H) padded;
        ``taken`` and ``probs``: per row block (module-major, then agent) (B, K_i) tensors.
        """
        G, k, hidden = group.size, group.agents_per_module, weights.shape[2]
        z = z.view(G, k, -1, hidden)
        weights = weights.view(G, k, *weights.shape[1:])
        widths = [probs[g * k].shape[-1] for g in range(G)]
        q = [None] * G
        for width in sorted(set(widths)):
            members = [g for g in range(G) if widths[g] == width]
            rows = [g * k + j for g in members for j in range(k)]
            w = weights[members, :, :width].flatten(0, 1)  # (S * k, K, H)
            a = torch.stack([taken[r] for r in rows])  # (S * k, B, K)
            without_own = z[members].flatten(0, 1) - torch.bmm(a, w)  # (S * k, B, H)
            z_each = without_own.unsqueeze(1) + w.unsqueeze(2)  # (S * k, K, B, H)
            # Each member's first critic (a slice, no weight copy, when all modules are members).
            nets = slice(None, None, group.nets_per_module)
            if len(members) < G:
                nets = torch.tensor(members, device=z.device) * group.nets_per_module
            q_each = group.net(z_each.reshape(len(members), -1, hidden), nets, start=1)
            q_each = q_each.view(len(rows), width, -1).transpose(1, 2)  # (S * k, B, K)
            value = (torch.stack([probs[r] for r in rows]) * q_each).sum(dim=-1).view(len(members), -1)
            for i, g in enumerate(members):
                q[g] = value[i]
        return torch.stack(q)

    def _set_gradients(self, groups: list[Group], loss: torch.Tensor, metrics: Metrics) -> None:
        """The loss's gradients for ``groups``' stacked weights, clipped per module and network."""
        params = _params(groups)
        grads = iter(torch.autograd.grad(loss, params))
        for group in groups:
            group_grads = [next(grads) for _ in group.net.params]
            if self.settings.grad_clip:
                norms = clip_per_network(group_grads, group.size, self.settings.grad_clip)
                _log(metrics, group, **{f"gradients_{group.kind}_global_norm": norms})
            for param, grad in zip(group.net.params, group_grads, strict=True):
                param.grad = grad

    @torch.no_grad()
    def _soft_update(self) -> None:
        """theta' <- tau * theta + (1 - tau) * theta', every target network at once."""
        for group in (*self.actors, *self.critics):
            for target, param in zip(group.target.params, group.net.params, strict=True):
                target.lerp_(param, self.settings.tau)

    # --- syncing with the modules ---

    @torch.no_grad()
    def write_back(self, modules: Mapping[str, Any], optimizers: Mapping[str, Mapping] | None = None) -> None:
        """Copy the weights into every module's actor, critic and target networks.

        ``optimizers`` ({module id: {"actor": Adam, "critic": Adam}} over each network's
        ``parameters()``, as the RLlib learner registers them) also receive Adam's state, so a
        checkpoint of them resumes this learner exactly.
        """
        for param, value in self._weight_pairs(modules):
            param.copy_(value)
        if optimizers is not None:
            for group, optimizer, g, mid in self._slices():
                for k, mlp, _ in self._networks(group, g, modules[mid]):
                    _write_adam_state(optimizer, group.net, k, optimizers[mid][group.kind], mlp)

    @torch.no_grad()
    def load_from(self, modules: Mapping[str, Any], optimizers: Mapping[str, Mapping] | None = None) -> None:
        """Copy every module's weights in (``write_back`` reversed), and Adam's state from
        ``optimizers`` when given (none of them stepped yet: this learner's state is reset)."""
        for param, value in self._weight_pairs(modules):
            value.copy_(param)
        if optimizers is not None:
            for groups, optimizer in (
                (self.actors, self.actor_optimizer),
                (self.critics, self.critic_optimizer),
            ):
                _read_adam_state(optimizer, groups, modules, optimizers)

    def _weight_pairs(self, modules: Mapping[str, Any]):
        """(module parameter, its view in the stacked weights) for every network and target."""
        for group, _, g, mid in self._slices():
            for k, mlp, target in self._networks(group, g, modules[mid]):
                yield from zip(mlp.parameters(), group.net.network(k), strict=True)
                yield from zip(target.parameters(), group.target.network(k), strict=True)

    def _slices(self):
        """(group, its fused optimizer, module index g, module id) for every group's modules."""
        for groups, optimizer in ((self.actors, self.actor_optimizer), (self.critics, self.critic_optimizer)):
            for group in groups:
                for g, mid in enumerate(group.module_ids):
                    yield group, optimizer, g, mid

    @staticmethod
    def _networks(group: Group, g: int, module: Any):
        """(stack slice, network, target network) of module g of ``group``."""
        return zip(
            group.slices(g), _mlps(module, group.kind), _mlps(module, group.kind, target=True), strict=True
        )


def _params(groups: Sequence[Group]) -> list[torch.Tensor]:
    return [p for group in groups for p in group.net.params]


def _log(metrics: Metrics, group: Group, **values: torch.Tensor) -> None:
    """Per-module metrics from (G,) tensors of one group."""
    for name, value in values.items():
        for mid, v in zip(group.module_ids, value.detach(), strict=True):
            metrics[mid][name] = v


def _write_adam_state(
    fused: torch.optim.Optimizer, stack: StackedMLP, k: int, optimizer: torch.optim.Optimizer, mlp: nn.Module
) -> None:
    """Network k's slice of the fused Adam state into ``optimizer``'s state of ``mlp``."""
    states = [fused.state.get(p) for p in stack.params]
    if any(not s for s in states):
        return  # not stepped yet
    params = list(mlp.parameters())
    for param in params:
        optimizer.state[param] = {}
    for key in states[0]:
        if states[0][key].dim() == 0:  # the step count, on the CPU as a default Adam keeps it
            values = [s[key].detach().to("cpu", torch.float32, copy=True) for s in states]
        else:
            values = [v.clone() for v in stack.network(k, [s[key] for s in states])]
        for param, value in zip(params, values, strict=True):
            optimizer.state[param][key] = value


def _read_adam_state(
    fused: torch.optim.Optimizer, groups: Sequence[Group], modules: Mapping[str, Any], optimizers: Mapping
) -> None:
    """The modules' Adam states stacked into ``fused``; all or none of them must have stepped."""
    fused.state.clear()
    pairs = []  # (fused param, stack index, that network's parameter, its optimizer)
    for group in groups:
        for g, mid in enumerate(group.module_ids):
            optimizer = optimizers[mid][group.kind]
            for k, mlp in zip(group.slices(g), _mlps(modules[mid], group.kind), strict=True):
                for stacked, param in zip(group.net.params, mlp.parameters(), strict=True):
                    pairs.append((stacked, k, param, optimizer))
    stepped = [bool(opt.state.get(param)) for _, _, param, opt in pairs]
    if not any(stepped):
        return
    steps = {float(opt.state[param]["step"]) for _, _, param, opt in pairs if opt.state.get(param)}
    if not all(stepped) or len(steps) > 1:
        raise ValueError("the fused Adam needs every module's optimizer at the same step")
    for stacked, k, param, opt in pairs:
        state = fused.state[stacked]
        for key, value in opt.state[param].items():
            if value.dim() == 0:  # the step count, on the weights' device as the fused Adam keeps it
                state[key] = value.detach().to(stacked.device, torch.float32, copy=True)
                continue
            if key not in state:
                state[key] = torch.zeros_like(stacked)
            state[key][k] = _as_matrix(value)
