"""mpe2's particle physics for ``num_envs`` worlds of one scenario at once, in plain torch.

Mirrors ``mpe2/_mpe_utils/core.py`` (``World.step``: action forces, contact forces,
``integrate_state`` with position *before* velocity, ``update_agent_state``) and the action
decoding of ``mpe2/_mpe_utils/simple_env.py`` (``SimpleEnv._execute_world_step`` and
``_set_action``). Motor and message noise (``u_noise``, ``c_noise``) are ``None`` in every mpe2
scenario, so there is none here.

Layout, with ``B`` envs, ``A`` agents and ``L`` landmarks, in mpe2's own entity order
(``world.entities``: agents, then landmarks):

- ``pos``  (B, A + L, 2) positions of every entity;
- ``vel``  (B, A, 2) agent velocities (landmarks never move in any mpe2 scenario);
- ``comm`` (B, A, dim_c) agent messages (``state.c``);
- constants per agent: ``accel`` and ``max_speed`` (A,), where mpe2's ``None`` becomes 5.0
  (``_set_action``'s default sensitivity) and ``inf``; ``size`` (A + L,); ``movable``, ``silent`` (A,).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

MOVE_DIM = 5
"""Movement part of an action: no-op, left, right, down, up (``world.dim_p * 2 + 1``)."""

_DIRECTIONS = ((0.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0))
_DEFAULT_SENSITIVITY = 5.0


@dataclass(frozen=True)
class AgentSpec:
    """An mpe2 ``Agent``'s constant properties (defaults are mpe2's)."""

    name: str
    size: float = 0.05
    movable: bool = True
    silent: bool = False
    collide: bool = True
    accel: float | None = None
    max_speed: float | None = None


@dataclass(frozen=True)
class LandmarkSpec:
    """An mpe2 ``Landmark``'s constant properties (never movable)."""

    size: float = 0.05
    collide: bool = True


@dataclass(frozen=True)
class WorldSpec:
    """What a scenario's ``make_world`` builds: agents and landmarks in mpe2's order."""

    agents: tuple[AgentSpec, ...]
    landmarks: tuple[LandmarkSpec, ...]
    dim_c: int = 0


class World:
    """The state of ``num_envs`` worlds and mpe2's ``World.step`` on all of them."""

    # mpe2 World defaults; no scenario changes them (mass is 1.0 for every entity too).
    dt = 0.1
    damping = 0.25
    contact_force = 1e2
    contact_margin = 1e-3
    # mpe2 moves the position before it updates the velocity (PettingZoo #962); True restores the
    # original MPE's order, for studies only: mpe2 is the reference, and the default.
    velocity_first = False

    def __init__(
        self,
        spec: WorldSpec,
        num_envs: int,
        *,
        device: torch.device,
        dtype: torch.dtype,
        generator: torch.Generator,
    ):
        self.spec = spec
        self.num_envs = num_envs
        self.num_agents = len(spec.agents)
        self.num_landmarks = len(spec.landmarks)
        self.dim_c = spec.dim_c
        self.device, self.dtype, self.generator = device, dtype, generator
        agents, entities = spec.agents, spec.agents + spec.landmarks

        self.size = self._tensor([e.size for e in entities])
        self.movable = self._tensor([a.movable for a in agents], torch.bool)
        self.landmark_index = torch.arange(self.num_agents, len(entities), device=device)
        self.env_index = torch.arange(num_envs, device=device)
        self.others = others_index(self.num_agents, device)
        self.silent = self._tensor([a.silent for a in agents], torch.bool)
        self._directions = self._tensor(_DIRECTIONS)
        self._slots = {c: self._action_slots(c) for c in (False, True)}
        # the column padding points to: never the argmax (discrete), no force or message (continuous)
        self._fillers = {
            c: torch.full((num_envs, 1), 0.0 if c else -math.inf, device=device, dtype=dtype)
            for c in (False, True)
        }
        self._init_contacts(entities)

        shape = (num_envs, self.num_agents)
        self.pos = torch.zeros(num_envs, len(entities), 2, device=device, dtype=dtype)
        self.vel = torch.zeros(*shape, 2, device=device, dtype=dtype)
        self.comm = torch.zeros(*shape, self.dim_c, device=device, dtype=dtype)
        self.accel = self._tensor([_accel(a.accel) for a in agents])
        self.max_speed = self._tensor([_max_speed(a.max_speed) for a in agents])

    def _tensor(self, values, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.tensor(values, device=self.device, dtype=dtype or self.dtype)

    def _init_contacts(self, entities: Sequence[AgentSpec | LandmarkSpec]) -> None:
        """Which (agent, colliding entity) pairs push each other: both ``collide``, not the same."""
        colliders = [j for j, e in enumerate(entities) if e.collide]
        pairs = [[entities[i].collide and j != i for j in colliders] for i in range(self.num_agents)]
        self._colliders = torch.tensor(colliders, device=self.device, dtype=torch.long)
        self._contact = torch.tensor(pairs, device=self.device, dtype=torch.bool).reshape(
            self.num_agents, len(colliders)
        )
        self._has_contacts = any(any(row) for row in pairs)
        self._contact_dist_min = self.size[: self.num_agents, None] + self.size[None, self._colliders]

    # --- views ---

    @property
    def agent_pos(self) -> torch.Tensor:
        """(B, A, 2) agent positions."""
        return self.pos[:, : self.num_agents]

    @property
    def landmark_pos(self) -> torch.Tensor:
        """(B, L, 2) landmark positions."""
        return self.pos[:, self.num_agents :]

    # --- randomness for reset_world ---

    def uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        """(B, *shape) draws from U(low, high), like ``np_random.uniform``."""
        u = torch.rand(self.num_envs, *shape, generator=self.generator, device=self.device, dtype=self.dtype)
        return low + (high - low) * u

    def integers(self, high: int, *shape: int) -> torch.Tensor:
        """(B, *shape) ints in [0, high), like ``np_random.integers(high)``."""
        return torch.randint(high, (self.num_envs, *shape), generator=self.generator, device=self.device)

    def reset_agents(self, mask: torch.Tensor, low: float = -1.0, high: float = 1.0) -> None:
        """reset_world's agent loop: ``p_pos ~ U(low, high)``, ``p_vel = 0``, ``c = 0``."""
        self.pos[:, : self.num_agents] = where_envs(
            mask, self.uniform(low, high, self.num_agents, 2), self.agent_pos
        )
        self.vel = where_envs(mask, torch.zeros_like(self.vel), self.vel)
        self.comm = where_envs(mask, torch.zeros_like(self.comm), self.comm)

    def reset_landmarks(self, mask: torch.Tensor, low: float = -1.0, high: float = 1.0) -> None:
        """reset_world's landmark loop: ``p_pos ~ U(low, high)``."""
        self.pos[:, self.num_agents :] = where_envs(
            mask, self.uniform(low, high, self.num_landmarks, 2), self.landmark_pos
        )

    # --- actions (SimpleEnv) ---

    def action_dim(self, agent: int, continuous: bool) -> int:
        """The size of ``SimpleEnv.__init__``'s action space for one agent (Discrete n or Box width)."""
        spec = self.spec.agents[agent]
        dim = MOVE_DIM if spec.movable else (0 if continuous else 1)
        if not spec.silent:
            dim = dim + self.dim_c if continuous else dim * self.dim_c
        return dim

    def _action_slots(self, continuous: bool) -> torch.Tensor:
        """(A, width) columns of the concatenated actions that make each agent's padded action.

        Discrete: the agent's n one-hot columns, then padding. Continuous: 5 movement then dim_c
        message columns, padding where the agent cannot move or speak. Padding points one past the
        last column, where ``decode_actions`` appends a filler column.
        """
        widths = [self.action_dim(i, continuous) for i in range(self.num_agents)]
        offsets = [sum(widths[:i]) for i in range(self.num_agents)]
        pad = sum(widths)
        rows = []
        for spec, offset, width in zip(self.spec.agents, offsets, widths, strict=True):
            if not continuous:
                rows.append([offset + k if k < width else pad for k in range(max(widths))])
                continue
            move = [offset + k if spec.movable else pad for k in range(MOVE_DIM)]
            say_from = offset + (MOVE_DIM if spec.movable else 0)
            rows.append(move + [pad if spec.silent else say_from + k for k in range(self.dim_c)])
        return torch.tensor(rows, device=self.device, dtype=torch.long)

    def decode_actions(
        self, actions: Sequence[torch.Tensor], continuous: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``SimpleEnv._set_action`` for every agent (world order), all agents at once.

        Discrete actions are one-hot rows (their argmax is mpe2's integer action); continuous ones are
        mpe2's [0, 1] vectors. Returns the action forces ``u`` (B, A, 2), already scaled by ``accel``,
        and the messages ``c`` (B, A, dim_c), zeros for silent agents (``update_agent_state``).
        """
        filler = self._fillers[continuous]
        padded = torch.cat([*actions, filler], 1)[:, self._slots[continuous]].to(self.dtype)
        u, c = self._decode_continuous(padded) if continuous else self._decode_discrete(padded)
        return u * self.accel[:, None], c

    def _decode_continuous(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # OpenAI MPE's mapping: (right - left, up - down); the no-op entry is ignored.
        u = torch.stack((action[..., 2] - action[..., 1], action[..., 4] - action[..., 3]), -1)
        return u, action[..., MOVE_DIM:]

    def _decode_discrete(self, one_hot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = one_hot.argmax(-1)  # (B, A): mpe2's integer action
        # A movable agent's action is move + 5 * message; an immobile one's is the message.
        u = self._directions[torch.where(self.movable, index % MOVE_DIM, 0)]
        if self.dim_c == 0:
            return u, self.comm
        message = torch.where(self.movable, index // MOVE_DIM, index)
        c = torch.nn.functional.one_hot(message, self.dim_c).to(self.dtype)
        return u, torch.where(self.silent[:, None], 0.0, c)

    # --- physics (World) ---

    def step(self, u: torch.Tensor, c: torch.Tensor) -> None:
        """``World.step``: action plus contact forces, ``integrate_state``, then the messages."""
        self.integrate(u + self.contact_forces())
        # update_agent_state: silent agents' c is zeros, which decode_actions already returned.
        self.comm = c

    def contact_forces(self) -> torch.Tensor:
        """(B, A, 2) sum of ``get_collision_force`` over every colliding entity, per agent.

        mpe2 adds the same terms pair by pair (``apply_environment_force``); summing them in
        another order differs only by rounding.
        """
        if not self._has_contacts:
            return torch.zeros_like(self.vel)
        delta = self.agent_pos[:, :, None] - self.pos[:, None, self._colliders]  # (B, A, C, 2)
        dist = norm(delta)[..., None]
        k = self.contact_margin
        # softmax penetration: log(1 + exp(-(dist - dist_min) / k)) * k
        x = -(dist - self._contact_dist_min[..., None]) / k
        penetration = torch.logaddexp(x.new_zeros(()), x) * k
        force = self.contact_force * delta / dist * penetration
        return torch.where(self._contact[..., None], force, 0.0).sum(2)

    def integrate(self, force: torch.Tensor) -> None:
        """``World.integrate_state``: position from the old velocity first, then damping, force, speed cap.
        With ``velocity_first``, the original MPE's order (openai/multiagent-particle-envs, the
        paper's): the new velocity moves the position in the same step."""
        pos = self.agent_pos
        vel = self.vel * (1 - self.damping)
        vel = vel + force * self.dt  # force / mass, and every mass is 1.0
        speed = norm(vel)[..., None]
        max_speed = self.max_speed[:, None]
        vel = torch.where(speed > max_speed, vel / speed * max_speed, vel)
        new_pos = pos + (vel if self.velocity_first else self.vel) * self.dt
        movable = self.movable[:, None]
        self.pos[:, : self.num_agents] = torch.where(movable, new_pos, pos)
        self.vel = torch.where(movable, vel, self.vel)

    # --- state from mpe2 ---

    def load_from_mpe(self, index: int, mpe_world) -> None:
        """Copy one mpe2 ``World``'s entity states into env ``index`` (its constants must match)."""
        constants = [(a.name, _accel(a.accel), _max_speed(a.max_speed)) for a in mpe_world.agents]
        expected = [(a.name, _accel(a.accel), _max_speed(a.max_speed)) for a in self.spec.agents]
        if constants != expected or len(mpe_world.landmarks) != self.num_landmarks:
            raise ValueError(
                f"mpe2 world has agents (name, accel, max_speed) {constants} and "
                f"{len(mpe_world.landmarks)} landmarks; this env has {expected} and {self.num_landmarks}"
            )
        for i, entity in enumerate(mpe_world.entities):
            self.pos[index, i] = self._tensor(entity.state.p_pos)
        for i, agent in enumerate(mpe_world.agents):
            self.vel[index, i] = self._tensor(agent.state.p_vel)
            self.comm[index, i] = self._tensor(agent.state.c)


def _accel(accel: float | None) -> float:
    return _DEFAULT_SENSITIVITY if accel is None else accel


def _max_speed(max_speed: float | None) -> float:
    return math.inf if max_speed is None else max_speed


# --- helpers the scenarios share ---


def where_envs(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor | None) -> torch.Tensor:
    """``new`` in the envs where ``mask`` (B,) is True, ``old`` elsewhere (``new`` if there is no old)."""
    if old is None:
        return new
    return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)


def squared_norm(v: torch.Tensor) -> torch.Tensor:
    """``np.sum(np.square(v))`` over the last axis (x, y).

    Written as x^2 + y^2, which is what numpy's sum of two numbers computes, and much faster in
    torch on CPU than a reduction over an axis of size 2.
    """
    return v[..., 0].square() + v[..., 1].square()


def norm(v: torch.Tensor) -> torch.Tensor:
    """``np.sqrt(np.sum(np.square(v)))`` over the last axis (x, y)."""
    return squared_norm(v).sqrt()


def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``np.sqrt(np.sum(np.square(a - b)))``: mpe2's distance."""
    return norm(a - b)


def is_collision(a: torch.Tensor, b: torch.Tensor, size_a, size_b) -> torch.Tensor:
    """The scenarios' ``is_collision``: distance below the sum of the sizes (broadcasts)."""
    return distance(a, b) < size_a + size_b


def relative_positions(world: World, entities: torch.Tensor | slice) -> torch.Tensor:
    """(B, A, n, 2): ``entity.state.p_pos - agent.state.p_pos`` for every agent and entity."""
    return world.pos[:, entities][:, None] - world.agent_pos[:, :, None]


def others_index(num_agents: int, device: torch.device) -> torch.Tensor:
    """(A, A - 1): for each agent, the other agents in world order (``if other is agent: continue``)."""
    rows = [[j for j in range(num_agents) if j != i] for i in range(num_agents)]
    return torch.tensor(rows, device=device, dtype=torch.long).reshape(num_agents, num_agents - 1)


def of_others(world: World, x: torch.Tensor) -> torch.Tensor:
    """(B, A, A - 1, ...) from a per-pair (B, A, A, ...) tensor: row i keeps the other agents' columns."""
    rows = torch.arange(world.num_agents, device=world.device)[:, None]
    return x[:, rows, world.others]


def other_agent_positions(world: World) -> torch.Tensor:
    """(B, A, A - 1, 2): every other agent's position relative to each agent, in world order."""
    return of_others(world, relative_positions(world, slice(0, world.num_agents)))


def prey_columns(
    others: torch.Tensor, num_adversaries: int, num_good: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The prey among each agent's others (B, A, A - 1, ...), adversaries listed first.

    Returns the adversaries' rows (all ``num_good`` prey) and the prey's rows (the ``num_good - 1``
    other prey): what simple_tag / simple_world_comm's ``if not other.adversary`` keep.
    """
    last = others.shape[2]
    return others[:, :num_adversaries, last - num_good :], others[:, num_adversaries:, last - num_good + 1 :]


def nearest(rel: torch.Tensor, n: int | None) -> torch.Tensor | None:
    """partial_observability.nearest_entities: (B, A, min(n, m)) indices, closest first; None keeps all."""
    if n is None:
        return None
    return norm(rel).argsort(dim=-1, stable=True)[..., :n]


def select_padded(x: torch.Tensor, order: torch.Tensor | None, n: int | None) -> torch.Tensor:
    """The ``padded_*`` helpers: the entries of x (B, A, m, d) in ``order``, zero-padded to n slots."""
    if order is None:
        return x
    picked = torch.take_along_dim(x, order[..., None], dim=2)
    missing = n - picked.shape[2]
    if missing > 0:
        picked = torch.cat([picked, picked.new_zeros(*picked.shape[:2], missing, picked.shape[3])], 2)
    return picked


def padded_relative_positions(rel: torch.Tensor, n: int | None) -> torch.Tensor:
    """partial_observability.padded_relative_positions: the n nearest of rel (B, A, m, 2), padded."""
    return select_padded(rel, nearest(rel, n), n)


def bound_penalty(x: torch.Tensor) -> torch.Tensor:
    """``bound(x)`` of simple_tag / simple_world_comm ``agent_reward``, for |coordinate| x."""
    outside = torch.clamp(torch.exp(2 * x - 2), max=10.0)
    return torch.where(x < 0.9, 0.0, torch.where(x < 1.0, (x - 0.9) * 10, outside))


def flat(x: torch.Tensor) -> torch.Tensor:
    """(B, A, n, d) -> (B, A, n * d): a list of per-entity vectors, concatenated as mpe2 does."""
    return x.flatten(2)
