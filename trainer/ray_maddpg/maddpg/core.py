"""MADDPG's math in plain torch (no Ray): networks, actions, targets, losses, target updates.

Notation follows Lowe et al. 2017 ("Multi-Agent Actor-Critic for Mixed Cooperative-Competitive
Environments") and openai/maddpg. For agent i with actor mu_i and critic Q_i:

    y_i        = r_i + gamma * (1 - terminated_i) * Q_i'(o'_1..o'_N, mu'_1(o'_1)..mu'_N(o'_N))
    L(Q_i)     = mean((Q_i(o_1..o_N, a_1..a_N) - y_i)^2)
    L(mu_i)    = -mean(Q_i(o_1..o_N, a_1..mu_i(o_i)..a_N)) + 1e-3 * mean(logits_i^2)
    theta'     <- tau * theta + (1 - tau) * theta'

The TD3 tricks (MATD3) are opt-in: twin critics (``min`` in the target), target policy
smoothing, and delayed actor updates (a schedule, so it lives in the learner).

Action conventions: a discrete actor outputs logits, and ``ActionRule`` says which vector (a
one-hot or a point of the simplex) is executed, stored, used in the target and in the actor
loss; a continuous actor outputs ``tanh`` in [-1, 1].
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Tensors = Sequence[torch.Tensor] | Mapping[str, torch.Tensor]


class MLP(nn.Sequential):
    """Linear layers with ``activation`` between them (none after the last): the paper's 2x64 ReLU."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.ReLU,
    ):
        sizes = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)


class Critic(nn.Module):
    """One Q network, or two (``twin=True``, TD3/MATD3); ``forward`` returns a list of (B,) values."""

    def __init__(self, in_dim: int, twin: bool = False, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.q_nets = nn.ModuleList(MLP(in_dim, 1, hidden) for _ in range(2 if twin else 1))

    def forward(self, critic_input: torch.Tensor) -> list[torch.Tensor]:
        return [q(critic_input).squeeze(-1) for q in self.q_nets]


# --- actions ---


def onehot_argmax(logits: torch.Tensor) -> torch.Tensor:
    """The one-hot of the greedy action (no gradient)."""
    return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)


def gumbel_noise(logits: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Gumbel(0, 1) noise shaped like ``logits``; from ``rng`` when given (one numpy call, cheaper
    than torch's few small ops where that fixed cost dominates, as in an env runner's loop)."""
    if rng is not None:
        return torch.from_numpy(rng.gumbel(size=tuple(logits.shape)).astype(np.float32))
    uniform = torch.rand_like(logits).clamp_(1e-10, 1.0 - 1e-10)
    return -torch.log(-torch.log(uniform))


def gumbel_softmax(logits: torch.Tensor, temperature: float = 1.0, hard: bool = False) -> torch.Tensor:
    """A relaxed one-hot sample: softmax((logits + g) / T), g ~ Gumbel(0, 1); differentiable in logits.

    ``hard=True`` returns the exact one-hot of that sample in the forward pass and the relaxed
    sample's gradient in the backward pass (straight-through).
    """
    soft = F.softmax((logits + gumbel_noise(logits)) / temperature, dim=-1)
    if not hard:
        return soft
    return onehot_argmax(soft) - soft.detach() + soft


def squash(raw: torch.Tensor) -> torch.Tensor:
    """A continuous actor's action in [-1, 1]."""
    return torch.tanh(raw)


RELAXATIONS = ("expected", "straight_through", "simplex", "mixed")
"""How a logits actor's actions are formed; see ``ActionRule``. ``tanh`` is the continuous rule."""
ONE_HOT_RULES = ("expected", "straight_through", "mixed")
"""The rules that execute and store one-hots, so they need discrete env actions."""


@dataclass(frozen=True)
class ActionRule:
    """How one actor's raw output becomes an action, the same kind of vector everywhere.

    The critic is only trustworthy at the kind of action it was trained on, so the action
    executed and stored, the TD target's next action and the actor loss's action must agree:

    ==================  ======================  ===================  =======================
    rule                executed and stored     TD target (mu')      actor loss (mu)
    ==================  ======================  ===================  =======================
    expected            one-hot of a sample     one-hot of argmax    sum_k pi_k Q(.., e_k, ..)
    straight_through    one-hot of a sample     one-hot of argmax    straight-through sample
    simplex             softmax((l + g) / T)    softmax((l + g)/T)   softmax((l + g) / T)
    mixed (ablation)    one-hot of a sample     softmax((l + g)/T)   softmax((l + g) / T)
    tanh                tanh(x) + N(0, s)       tanh(x)              tanh(x)
    ==================  ======================  ===================  =======================

    ``expected`` scores the policy pi = softmax(l / T) by the exact expectation of Q over the
    agent's own one-hot actions e_k, the others' actions fixed (``expected_q``): no sampling noise
    and no biased straight-through gradient, at K critic passes instead of one. It explores with
    a sample of softmax(l), the same pi at the default T = 1. ``straight_through`` is
    maddpg-pytorch's and EPyMARL's regime, ``simplex`` openai/maddpg's
    (the env executes the soft vector, as mpe2's continuous actions do), ``mixed`` this project's
    earlier combination, kept only as a named ablation. g ~ Gumbel(0, 1), T the temperature.
    """

    kind: str = "expected"  # one of RELAXATIONS, or "tanh"
    temperature: float = 1.0

    def __post_init__(self):
        if self.kind not in (*RELAXATIONS, "tanh"):
            raise ValueError(
                f"unknown action rule {self.kind!r}; allowed: {', '.join((*RELAXATIONS, 'tanh'))}"
            )

    @property
    def one_hot(self) -> bool:
        """Stored and executed actions are one-hots (the env takes their argmax)."""
        return self.kind in ONE_HOT_RULES

    def explore(
        self,
        out: torch.Tensor,
        *,
        noise_std: float = 0.1,
        rng: np.random.Generator | None = None,
        generator: torch.Generator | None = None,
    ):
        """The action executed and stored while collecting data.

        The one-hot of a Gumbel-softmax sample is the one-hot of argmax(logits + g) at any
        temperature, so no softmax is needed; ``rng`` draws that Gumbel noise with numpy,
        ``generator`` a ``tanh`` action's Gaussian noise (default: torch's global generator).
        """
        if self.kind == "tanh":
            return add_exploration_noise(squash(out), noise_std, generator)
        if self.one_hot:
            return onehot_argmax(out + gumbel_noise(out, rng))
        return F.softmax((out + gumbel_noise(out, rng)) / self.temperature, dim=-1)

    def greedy(self, out: torch.Tensor) -> torch.Tensor:
        """The deterministic action, for evaluation: no noise."""
        if self.kind == "tanh":
            return squash(out)
        if self.one_hot:
            return onehot_argmax(out)
        return F.softmax(out / self.temperature, dim=-1)

    def target(self, out: torch.Tensor) -> torch.Tensor:
        """The next action mu'(o') in the TD target (no gradient needed)."""
        if self.kind == "tanh":
            return squash(out)
        if self.kind in ("expected", "straight_through"):
            return onehot_argmax(out)
        return gumbel_softmax(out, self.temperature)

    def policy(self, out: torch.Tensor) -> torch.Tensor:
        """mu(o) in the actor loss: differentiable in ``out``. For ``expected``: the probabilities
        pi = softmax(out / T) that ``expected_q`` weighs the critic's values with."""
        if self.kind == "tanh":
            return squash(out)
        if self.kind == "expected":
            return F.softmax(out / self.temperature, dim=-1)
        return gumbel_softmax(out, self.temperature, hard=self.kind == "straight_through")

    def policy_q(self, out: torch.Tensor, q_of: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Q_i(.., mu_i(o_i), ..) for the actor loss, (B,); ``q_of(action)`` scores agent i's
        action (B, A) with the other agents' actions fixed."""
        if self.kind == "expected":
            return expected_q(self.policy(out), q_of)
        return q_of(self.policy(out))

    def to_env(self, action: torch.Tensor | np.ndarray):
        """A stored action as ``MPEMultiAgentEnv`` takes it: an index for one-hots, a [-1, 1]
        vector otherwise (the env maps [-1, 1] to mpe2's [0, 1]; a simplex vector p is sent as
        2p - 1, so mpe2 receives p itself)."""
        if self.one_hot:
            return action.argmax(-1)
        return action if self.kind == "tanh" else 2.0 * action - 1.0

    def to_mpe_units(self, action: torch.Tensor) -> torch.Tensor:
        """A stored action as mpe2 itself reads it (``BatchedMPEEnv.step``): one-hot rows and
        simplex vectors as they are, a ``tanh`` action in [-1, 1] mapped to [0, 1]."""
        return (action + 1.0) * 0.5 if self.kind == "tanh" else action


def expected_q(probs: torch.Tensor, q_of: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """sum_k probs_k * q_of(e_k): the exact expectation of Q over the agent's K one-hot actions,
    (B,); differentiable in ``probs`` (and in ``q_of``'s parameters)."""
    eye = torch.eye(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    q_each = torch.stack([q_of(e.expand_as(probs)) for e in eye], dim=-1)  # (B, K)
    return (probs * q_each).sum(dim=-1)


def add_exploration_noise(
    action: torch.Tensor, std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian exploration for a continuous action in [-1, 1], clipped back into range."""
    noise = torch.randn(action.shape, generator=generator, dtype=action.dtype, device=action.device)
    return (action + std * noise).clamp(-1.0, 1.0)


def target_policy_smoothing(action: torch.Tensor, noise_std: float, noise_clip: float) -> torch.Tensor:
    """TD3: the target action plus clipped Gaussian noise, so Q' is smooth around mu'(o')."""
    noise = (noise_std * torch.randn_like(action)).clamp(-noise_clip, noise_clip)
    return (action + noise).clamp(-1.0, 1.0)


# --- critic inputs ---


def _in_agent_order(tensors: Tensors) -> list[torch.Tensor]:
    if isinstance(tensors, Mapping):
        return [tensors[agent_id] for agent_id in sorted(tensors)]
    return list(tensors)


def centralized_critic_input(obs: Tensors, actions: Tensors) -> torch.Tensor:
    """[o_1, .., o_N, a_1, .., a_N] in sorted agent order (dicts are sorted by agent id)."""
    return torch.cat(_in_agent_order(obs) + _in_agent_order(actions), dim=-1)


def local_critic_input(own_obs: torch.Tensor, own_action: torch.Tensor) -> torch.Tensor:
    """[o_i, a_i]: the paper's DDPG baseline critic Q_i(o_i, a_i)."""
    return torch.cat([own_obs, own_action], dim=-1)


def critic_input(
    module, j: int, obs: Mapping[str, torch.Tensor], actions: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Agent ``module.agents[j]``'s critic input, (B, D): [o_1..o_N, a_1..a_N] in sorted agent
    order (centralized) or [o_i, a_i] (local), plus its one-hot index when the critic is shared.

    ``module``: anything with ``agents`` (served), ``all_agents`` (sorted) and ``critic_kind``.
    """
    aid = module.agents[j]
    if module.critic_kind == "centralized":
        x = centralized_critic_input(
            [obs[a] for a in module.all_agents], [actions[a] for a in module.all_agents]
        )
    else:
        x = local_critic_input(obs[aid], actions[aid])
    if len(module.agents) > 1:
        agent_id = torch.zeros(x.shape[0], len(module.agents), dtype=x.dtype, device=x.device)
        agent_id[:, j] = 1.0
        x = torch.cat([x, agent_id], dim=-1)
    return x


# --- targets and losses ---


def critic_target(
    rewards: torch.Tensor,
    next_q_values: torch.Tensor | Sequence[torch.Tensor],
    terminated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """y = r + gamma * (1 - terminated) * Q'(s', mu'(o')), detached.

    ``next_q_values``: one (B,) tensor, or a list of them from twin critics (their ``min`` is
    used). Only ``terminated`` stops the bootstrap; a truncated (time-limit) step bootstraps.
    """
    if isinstance(next_q_values, torch.Tensor):
        next_q = next_q_values
    else:
        next_q = torch.stack(list(next_q_values)).min(dim=0).values
    return (rewards + gamma * (1.0 - terminated.to(rewards.dtype)) * next_q).detach()


def critic_loss(q_pred: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error; twin critics each regress to the same target and their losses add."""
    preds = [q_pred] if isinstance(q_pred, torch.Tensor) else list(q_pred)
    return sum(F.mse_loss(q, target) for q in preds)


def actor_loss(
    q_of_policy_action: torch.Tensor, logits: torch.Tensor | None = None, logit_penalty: float = 1e-3
) -> torch.Tensor:
    """-mean(Q_i(.., mu_i(o_i), ..)) + penalty * mean(logits^2) (the reference code's regulariser)."""
    loss = -q_of_policy_action.mean()
    if logits is not None and logit_penalty:
        loss = loss + logit_penalty * logits.pow(2).mean()
    return loss


# --- target networks ---


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging in place: theta' <- tau * theta + (1 - tau) * theta'."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s, tau)
    for t, s in zip(target.buffers(), source.buffers(), strict=True):
        t.copy_(s)


# --- matmul precision ---

MATMUL_DTYPES = ("float32", "bfloat16")


def matmul_precision(dtype: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """A context in which an update's matmuls run in ``dtype`` (``MATMUL_DTYPES``).

    bfloat16 is ``torch.autocast``: matmuls (and the activations after them) in bf16, while the
    weights, gradients, Adam's state and the losses stay float32. On a CPU with AVX512-BF16 it
    made a speaker-listener update 1.7x faster and learned the same (docs/results.md).
    """
    if dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {', '.join(MATMUL_DTYPES)} (got {dtype!r})")
    if dtype == "float32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    if not bf16_is_native(device_type):
        _warn_slow_bf16(device_type)
    return torch.autocast(device_type, dtype=torch.bfloat16)


@functools.cache
def bf16_is_native(device_type: str) -> bool:
    """Whether this machine's ``device_type`` has bf16 matmul units (a GPU that supports bf16, or a
    CPU with AVX512-BF16 or AMX); elsewhere torch emulates bf16, slower than float32."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: unknown, so assume not
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def _warn_slow_bf16(device_type: str) -> None:
    warnings.warn(
        f"matmul_dtype: bfloat16 on a {device_type} without bf16 matmul units (AVX512-BF16, AMX "
        f"or a bf16 GPU) is emulated and likely slower than float32",
        RuntimeWarning,
        stacklevel=3,
    )


# --- batched inference for the env runner ---


class JointActors:
    """All agents' actor forward passes for a batch of envs in one call (inference only).

    Actors with the same layer shapes and activations form a group whose weights are stacked
    to (G, in, out), so each layer is one ``torch.baddbmm`` for the whole group (all agents of
    simple_spread; the three adversaries of simple_tag). Other actors run on their own.
    Call ``sync()`` after the actors' weights change.
    """

    def __init__(self, actors: Sequence[nn.Module]):
        self.actors = list(actors)
        by_signature: dict = {}
        for i, actor in enumerate(self.actors):
            signature = layer_signature(actor)
            by_signature.setdefault(("alone", i) if signature is None else signature, []).append(i)
        self.groups: list[list[int]] = list(by_signature.values())
        self.homogeneous = len(self.groups) == 1 and len(self.actors) > 1
        self._stacked: list[list | None] = []
        self.sync()

    @torch.no_grad()
    def sync(self) -> None:
        """Re-stack the weights from the actors (after a weight update)."""
        self._stacked = [
            self._stack([self.actors[i] for i in group]) if len(group) > 1 else None for group in self.groups
        ]

    @staticmethod
    def _stack(actors: list[nn.Module]) -> list:
        stacked = []
        for layers in zip(*actors, strict=True):
            if isinstance(layers[0], nn.Linear):
                weight = torch.stack([layer.weight.t() for layer in layers])  # (G, in, out)
                bias = torch.stack([layer.bias for layer in layers]).unsqueeze(1)  # (G, 1, out)
                stacked.append((weight.contiguous(), bias))
            else:
                stacked.append(layers[0])  # elementwise activation: the same for the whole group
        return stacked

    @staticmethod
    def _forward_stacked(layers: list, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = torch.baddbmm(layer[1], x, layer[0]) if isinstance(layer, tuple) else layer(x)
        return x

    @torch.no_grad()
    def forward_joint(self, obs: torch.Tensor) -> torch.Tensor:
        """Homogeneous actors only: (N, B, obs_dim) in, (N, B, out_dim) raw outputs out."""
        if not self.homogeneous:
            raise ValueError("forward_joint needs actors of one shape; call the JointActors instead")
        return self._forward_stacked(self._stacked[0], obs)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``obs``: per-agent (B, obs_dim_i) tensors in agent order, or, for homogeneous actors,
        one (N, B, obs_dim) tensor. Returns each agent's raw actor output (logits or pre-``tanh``).
        """
        if isinstance(obs, torch.Tensor) and self.homogeneous:
            return list(self._forward_stacked(self._stacked[0], obs).unbind(0))
        outputs: list[torch.Tensor | None] = [None] * len(self.actors)
        for group, layers in zip(self.groups, self._stacked, strict=True):
            if layers is None:
                outputs[group[0]] = self.actors[group[0]](obs[group[0]])
                continue
            stacked_out = self._forward_stacked(layers, torch.stack([obs[i] for i in group]))
            for i, out in zip(group, stacked_out.unbind(0), strict=True):
                outputs[i] = out
        return outputs


def layer_signature(actor: nn.Module) -> tuple | None:
    """What must match for two actors' weights to be stacked; ``None`` when they cannot be."""
    if not isinstance(actor, nn.Sequential):
        return None
    signature = []
    for layer in actor:
        if isinstance(layer, nn.Linear):
            if layer.bias is None:
                return None
            signature.append((nn.Linear, tuple(layer.weight.shape)))
        else:
            signature.append((type(layer), repr(layer)))
    return tuple(signature)
