"""MADDPG (Lowe et al. 2017) and its variants (DDPG baseline, MATD3) as an RLlib Algorithm.

``MADDPGConfig`` holds the paper's defaults; ``MADDPG.training_step`` follows the paper's
schedule: learning starts after ``num_steps_sampled_before_learning_starts`` joint env
steps, then exactly one update of every agent per ``env_steps_per_update`` env steps.
With remote env runners, the next sample runs while the learner updates on the last one.
"""

from __future__ import annotations

import copy
import inspect
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    TIMERS,
)

from ray_maddpg.envs.mpe import register_mpe_env
from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg.batch import JointBatch
from ray_maddpg.maddpg.core import MATMUL_DTYPES, ONE_HOT_RULES, RELAXATIONS
from ray_maddpg.maddpg.env_runner import JointEnvRunner, make_joint_env
from ray_maddpg.maddpg.layout import AgentLayout, team_of, teams_of
from ray_maddpg.maddpg.replay import JointReplayBuffer
from ray_maddpg.maddpg.torch.maddpg_torch_learner import NUM_UPDATES, MADDPGTorchLearner
from ray_maddpg.maddpg.torch.maddpg_torch_rl_module import MADDPGTorchRLModule
from ray_maddpg.validation import (
    Check,
    auto_or,
    boolean,
    int_at_least,
    list_of,
    number_above,
    number_in,
    one_of,
    optional,
    positive_int,
)
from ray_maddpg.validation import problems as validation_problems

CRITIC_KINDS = ("centralized", "local")
AUTO_FRAGMENT_LENGTH = 100  # steps per env per sample with few envs (the paper's update interval)
AUTO_SAMPLE_ENV_STEPS = 800  # at most this many env steps per sample with many: 8 updates' worth
NUM_UPDATES_LIFETIME = "num_learner_updates_lifetime"
UPDATES_PER_ENV_STEP = "updates_per_env_step"


def _per_team(check: Check, message: str) -> Check:
    """``check``, or a dict team -> a value ``check`` allows (per-team settings)."""

    def per_team(value: Any) -> str | None:
        values = value.values() if isinstance(value, dict) else [value]
        return None if all(check(v) is None for v in values) else message

    return per_team


@dataclass(frozen=True)
class Field:
    """One algorithm setting: its default, its check (``validation``) and what it means."""

    default: Any
    check: Check
    doc: str


# Every algorithm setting, declared once: ``MADDPGConfig``'s defaults, ``training()``'s keywords,
# ``validate()`` and the experiment file's ``algorithm`` section all come from this table. The
# defaults are the paper's (openai/maddpg) except the learning rates and the discrete action
# rule, which docs/results.md's measurements chose (the paper: lr 1e-2 for both networks and
# soft Gumbel-softmax actions).
FIELDS: dict[str, Field] = {
    # Adam learning rates: a critic precise enough near the goal, and an actor ten times slower
    # than it (the paper's 1e-2 for both drifts on `simple`: docs/results.md).
    "actor_lr": Field(1e-4, number_above(0, strict=True), "Adam learning rate of every actor"),
    "critic_lr": Field(1e-3, number_above(0, strict=True), "Adam learning rate of every critic"),
    "gamma": Field(0.95, number_in(0, 1), "discount"),
    "tau": Field(
        0.01, number_in(0, 1, open_low=True), "Polyak rate of the target networks, after every update"
    ),
    "train_batch_size_per_learner": Field(1024, int_at_least(1), "joint transitions per update"),
    "replay_buffer_capacity": Field(1_000_000, int_at_least(1), "joint transitions kept"),
    "num_steps_sampled_before_learning_starts": Field(
        25_600, int_at_least(0), "env steps before learning (1024 * 25)"
    ),
    "env_steps_per_update": Field(100, int_at_least(1), "joint env steps per update of all agents"),
    # An env runner's policy is synced once per sample, so a sample of many envs x 100 steps
    # trains on stale actions: 64 envs x 100 steps (64 updates between syncs) ended simple_spread
    # at -44 where 64 x 13 and 8 x 100 (8 updates) reach -37 and -34 (docs/results.md, "64 envs").
    "rollout_fragment_length": Field(
        "auto",
        auto_or(int_at_least(1)),
        f"steps of each env per sample; auto: 100, or fewer so that a sample (this x envs per "
        f"runner) stays about {AUTO_SAMPLE_ENV_STEPS} env steps",
    ),
    "grad_clip": Field(
        0.5, optional(number_above(0, strict=True)), "global gradient norm, per network (null: off)"
    ),
    "actor_logit_penalty": Field(1e-3, number_above(0), "weight of mean(actor output^2) in the actor loss"),
    "actor_hidden": Field(
        [64, 64], list_of(positive_int, "positive integers", non_empty=False), "actor MLP hidden sizes (ReLU)"
    ),
    "critic_hidden": Field(
        [64, 64],
        list_of(positive_int, "positive integers", non_empty=False),
        "critic MLP hidden sizes (ReLU)",
    ),
    "critic": Field(
        "centralized",
        _per_team(one_of(*CRITIC_KINDS), "must be 'centralized', 'local' or a dict team -> one of them"),
        "centralized (MADDPG), local (DDPG), or {team: kind}",
    ),
    "twin_q": Field(False, boolean, "MATD3: two critics, min in the target"),
    "policy_delay": Field(1, int_at_least(1), "MATD3: actors and targets move every n-th update"),
    "target_noise": Field(0.0, number_above(0), "MATD3: target policy smoothing std (continuous actions)"),
    "target_noise_clip": Field(0.5, number_above(0), "MATD3: clip of that noise"),
    "exploration_noise": Field(0.1, number_above(0), "Gaussian std on continuous actions while sampling"),
    "exploration_noise_final": Field(None, optional(number_above(0)), "std after annealing (null: constant)"),
    "exploration_anneal_steps": Field(0, int_at_least(0), "env steps of the linear annealing"),
    "gumbel_temperature": Field(
        1.0, number_above(0, strict=True), "Gumbel-softmax temperature (discrete actions)"
    ),
    "action_relaxation": Field(
        None,
        optional(one_of(*RELAXATIONS)),
        "the action vector executed, stored, targeted and trained on (core.ActionRule): null = expected "
        "for discrete actions, tanh for continuous; simplex needs env.continuous_actions: true",
    ),
    "sequential_update": Field(True, boolean, "critic step, then the actor against the updated critic"),
    "fused_update": Field(True, boolean, "every agent's networks stacked in one update (maddpg/fused.py)"),
    # bfloat16: 1.7x faster speaker-listener updates on a CPU with AVX512-BF16, the same learning
    # (docs/results.md); float32 stays the default, so results do not depend on the hardware.
    "matmul_dtype": Field(
        "float32",
        one_of(*MATMUL_DTYPES),
        "dtype of the update's matmuls: float32, or bfloat16 (torch.autocast; weights, Adam and "
        "losses stay float32; fast only with AVX512-BF16, AMX or a bf16 GPU)",
    ),
    "share_parameters": Field(
        False,
        _per_team(boolean, "must be true/false or a dict team -> true/false"),
        "one module per team of homogeneous agents (bool or {team: bool})",
    ),
    "store_buffer_in_checkpoints": Field(False, boolean, "include the replay buffer in checkpoints"),
}
# AlgorithmConfig.training's own keywords among them (gamma, grad_clip, ...) go through RLlib.
_RLLIB_TRAINING = set(inspect.signature(AlgorithmConfig.training).parameters)


class MADDPGConfig(AlgorithmConfig):
    """MADDPG's settings: ``FIELDS`` (their defaults, checks and meaning) plus RLlib's own."""

    USER_FIELDS = FIELDS  # the settings an experiment file's `algorithm` section may give

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MADDPG)
        for name, field in FIELDS.items():
            setattr(self, name, copy.deepcopy(field.default))

        # RLlib settings that fit MADDPG.
        self.env = "mpe2"
        self.env_runner_cls = JointEnvRunner
        self.min_sample_timesteps_per_iteration = 2500  # 100 episodes of 25 steps per train()
        self.merge_env_runner_states = False  # our runners have no connector state
        self.broadcast_env_runner_states = False
        self.policy_mapping_fn = _module_of_agent

    def training(self, **kwargs) -> MADDPGConfig:
        """Any ``FIELDS`` setting, plus everything ``AlgorithmConfig.training`` takes."""
        ours = {k: kwargs.pop(k) for k in list(kwargs) if k in FIELDS and k not in _RLLIB_TRAINING}
        super().training(**kwargs)
        for name, value in ours.items():
            if value is not NotProvided:
                setattr(self, name, value)
        return self

    def get_rollout_fragment_length(self, worker_index: int = 0) -> int:
        """Steps of each env per ``sample()``; "auto": 100, or fewer with more than 8 envs per
        runner, so that one sample stays about ``AUTO_SAMPLE_ENV_STEPS`` env steps."""
        if self.rollout_fragment_length != "auto":
            return int(self.rollout_fragment_length)
        num_envs = max(1, int(self.num_envs_per_env_runner))
        return min(AUTO_FRAGMENT_LENGTH, -(-AUTO_SAMPLE_ENV_STEPS // num_envs))

    # --- agents, teams and modules ---

    def _per_team(self, setting: Any, team: str, default: Any) -> Any:
        return setting.get(team, default) if isinstance(setting, dict) else setting

    def critic_of(self, agent_id: str) -> str:
        return self._per_team(self.critic, team_of(agent_id), "centralized")

    def shares(self, team: str) -> bool:
        return bool(self._per_team(self.share_parameters, team, False))

    def action_rule_of(self, discrete: bool) -> str:
        """The ``core.ActionRule`` kind of an agent whose env actions are discrete or not."""
        relaxation = self.action_relaxation
        if not discrete:
            return "simplex" if relaxation == "simplex" else "tanh"
        return relaxation or "expected"

    def agent_to_module(self, agents: list[str]) -> dict[str, str]:
        """Module id per agent: the agent id, or the team name when the team shares parameters."""
        return {aid: team_of(aid) if self.shares(team_of(aid)) else aid for aid in sorted(agents)}

    def agent_layout(self, env=None) -> AgentLayout:
        """The env's agents and sizes (``AgentLayout``) with this config's modules.

        The env part is read once per config object (again if its env or env_config changes),
        from ``env`` when given (an env built from this config) or else from an env built and
        closed here. It is kept outside the config, so it never reaches a checkpoint.
        """
        key = _env_key(self)
        cached = _ENV_LAYOUTS.get(self)
        if cached is None or cached[0] != key:
            probe = env if env is not None else make_joint_env(self)
            try:
                cached = (key, AgentLayout.from_env(probe))
            finally:
                if env is None:
                    probe.close()
            _ENV_LAYOUTS[self] = cached
        base = cached[1]
        return base.with_modules(self.agent_to_module(base.agents))

    def get_multi_rl_module_spec(self, *, env=None, spaces=None, inference_only: bool = False, **kwargs):
        """One ``MADDPGTorchRLModule`` per agent (or per sharing team), built from the env's layout."""
        layout = self.agent_layout()
        self._check_layout(layout)
        specs = {}
        for mid, members in layout.modules.items():
            first = members[0]
            specs[mid] = RLModuleSpec(
                module_class=MADDPGTorchRLModule,
                observation_space=layout.observation_spaces[first],
                action_space=layout.action_spaces[first],
                inference_only=inference_only,
                model_config={
                    "agents": members,
                    "all_agents": list(layout.agents),
                    "obs_dims": dict(layout.obs_dims),
                    "act_dims": dict(layout.act_dims),
                    "action_rule": self.action_rule_of(layout.discrete[first]),
                    "gumbel_temperature": self.gumbel_temperature,
                    "critic": self.critic_of(first),
                    "twin_q": self.twin_q,
                    "actor_hidden": list(self.actor_hidden),
                    "critic_hidden": list(self.critic_hidden),
                },
            )
        return MultiRLModuleSpec(rl_module_specs=specs)

    def setting_problems(self, agents: Sequence[str], discrete: Iterable[bool]) -> list[tuple[str, str]]:
        """Problems of the per-team and action settings with an env's agent ids and action kinds.

        It needs no env: the experiment schema passes the scenario's agent ids from its spec.
        """
        teams = teams_of(agents)
        discrete = set(discrete)
        problems = []
        if self.action_relaxation == "simplex" and True in discrete:
            problems.append(
                (
                    "algorithm.action_relaxation",
                    "'simplex' executes soft vectors: set env.continuous_actions: true",
                )
            )
        if self.action_relaxation in ONE_HOT_RULES and False in discrete:
            problems.append(
                (
                    "algorithm.action_relaxation",
                    f"{self.action_relaxation!r} needs discrete actions: set env.continuous_actions: false "
                    "(or use 'simplex' or null)",
                )
            )
        for name in ("critic", "share_parameters"):
            setting = getattr(self, name)
            if isinstance(setting, dict):
                unknown = sorted(set(setting) - set(teams))
                if unknown:
                    problems.append(
                        (f"algorithm.{name}", f"unknown team(s) {unknown}; teams: {sorted(teams)}")
                    )
        return problems

    def _check_layout(self, layout: AgentLayout) -> None:
        problems = self.setting_problems(layout.agents, layout.discrete.values())
        for team, members in layout.teams.items():
            if not self.shares(team):
                continue
            kinds = {(layout.obs_dims[a], layout.act_dims[a], layout.discrete[a]) for a in members}
            if len(kinds) > 1:
                problems.append(
                    (
                        "algorithm.share_parameters",
                        f"team {team!r} has agents with different observation/action spaces; "
                        "parameter sharing needs homogeneous agents",
                    )
                )
        if problems:
            raise ConfigError(problems)

    # --- RLlib plumbing ---

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=MADDPGTorchRLModule)

    def get_default_learner_class(self):
        return MADDPGTorchLearner

    def validate(self) -> None:
        super().validate()
        checks = {name: field.check for name, field in FIELDS.items()}
        values = {name: getattr(self, name) for name in FIELDS}
        problems = validation_problems(values, checks, prefix="algorithm.")
        if problems:
            raise ConfigError(problems)


def joint_train_batch(batch: JointBatch, layout: AgentLayout) -> MultiAgentBatch:
    """A ``JointBatch`` as RLlib's ``MultiAgentBatch`` for ``Learner.update``: one ``SampleBatch``
    per module, its agents (``layout.modules``) along axis 1 (a (B,) ``terminated`` or
    ``truncated`` counts for every agent).

    Row b is the same env step in every module's batch, which is what lets each
    critic see every agent's observation and action.
    """
    index = {aid: i for i, aid in enumerate(layout.agents)}
    rows = len(batch)

    def per_agent(value: np.ndarray) -> np.ndarray:
        value = np.asarray(value)
        return np.repeat(value[:, None], len(index), axis=1) if value.ndim == 1 else value

    rewards, terminated, truncated = (
        per_agent(v) for v in (batch.rewards, batch.terminated, batch.truncated)
    )
    batches = {}
    for mid, members in layout.modules.items():
        idx = [index[a] for a in members]
        batches[mid] = SampleBatch(
            {
                Columns.OBS: np.stack([batch.obs[i] for i in idx], axis=1),
                Columns.ACTIONS: np.stack([batch.actions[i] for i in idx], axis=1),
                Columns.REWARDS: rewards[:, idx],
                Columns.NEXT_OBS: np.stack([batch.next_obs[i] for i in idx], axis=1),
                Columns.TERMINATEDS: terminated[:, idx].astype(np.float32),
                Columns.TRUNCATEDS: truncated[:, idx].astype(np.float32),
            }
        )
    return MultiAgentBatch(batches, env_steps=rows)


def random_replay(config: MADDPGConfig, rows: int, seed: int = 0) -> JointReplayBuffer:
    """A replay buffer of ``rows`` joint transitions that ``config``'s env runner sampled with
    random actions (for tests, benchmarks and the GPU check)."""
    runner = JointEnvRunner(config=config)
    try:
        batch = runner.sample(num_timesteps=rows, random_actions=True)
    finally:
        runner.stop()
    buffer = JointReplayBuffer(rows, runner.layout.obs_sizes, runner.layout.act_sizes, seed=seed)
    buffer.add(batch)
    return buffer


def random_train_batch(config: MADDPGConfig, steps: int, rows: int) -> MultiAgentBatch:
    """``rows`` transitions drawn from a ``random_replay`` of ``steps``, as ``Learner.update`` takes them."""
    return joint_train_batch(random_replay(config, steps).sample(rows), config.agent_layout())


_ENV_LAYOUTS: weakref.WeakKeyDictionary[AlgorithmConfig, tuple[tuple, AgentLayout]] = (
    weakref.WeakKeyDictionary()
)
"""``MADDPGConfig.agent_layout``'s env part per config object, with the env spec (``_env_key``) it
was read for."""


def _env_key(config: AlgorithmConfig) -> tuple:
    env = config.env
    return (
        env if isinstance(env, str | type) or env is None else repr(env),
        repr(sorted((config.env_config or {}).items())),
    )


def _module_of_agent(agent_id, episode=None, **kwargs):
    """RLlib's ``policy_mapping_fn`` for per-agent modules (sharing is resolved by the config)."""
    return agent_id


class MADDPG(Algorithm):
    """The training loop: sample joint transitions, store them, update on the paper's schedule."""

    @classmethod
    def get_default_config(cls) -> MADDPGConfig:
        return MADDPGConfig()

    def setup(self, config) -> None:
        register_mpe_env()
        super().setup(config)
        self._layout = self.config.agent_layout()
        self.replay_buffer = JointReplayBuffer(
            self.config.replay_buffer_capacity,
            self._layout.obs_sizes,
            self._layout.act_sizes,
            seed=self.config.seed,
        )
        self._env_steps = 0  # joint env steps sampled in this run
        self._num_updates = 0  # learner updates done in this run
        self._sampling = False  # a remote sample is in flight

    # --- the training step ---

    def training_step(self) -> None:
        for data in self._sample():
            with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
                self.replay_buffer.add(data)
            self._env_steps += len(data)

        # The paper's schedule, exactly: after learning starts, update k is due once
        # k * env_steps_per_update further env steps have been sampled.
        eligible = self._env_steps - self.config.num_steps_sampled_before_learning_starts
        due = max(0, eligible) // self.config.env_steps_per_update
        if len(self.replay_buffer) < self.config.train_batch_size_per_learner:
            due = self._num_updates
        if due > self._num_updates:
            # All due updates in one learner call: one minibatch (= one update) each.
            with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
                results = self._update(due - self._num_updates)
            self.metrics.aggregate(results, key=LEARNER_RESULTS)
            self._num_updates = due
            if self.env_runner_group.num_remote_env_runners() == 0:
                self.env_runner.set_state(self._weights())
        self.metrics.log_value(NUM_UPDATES_LIFETIME, self._num_updates, window=1)
        self.metrics.log_value(UPDATES_PER_ENV_STEP, self._num_updates / max(1, eligible), window=1)

    def _sample(self) -> list[JointBatch]:
        """Joint transitions from the env runners; remote sampling overlaps the updates."""
        group = self.env_runner_group
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            if group.num_remote_env_runners() == 0:
                data, metrics = self.env_runner.sample_with_metrics(global_env_steps=self._env_steps)
                self.metrics.aggregate([metrics], key=ENV_RUNNER_RESULTS)
                return [data]
            if not self._sampling:
                self._launch_sample()
            results = group.fetch_ready_async_reqs(
                tags="sample", timeout_seconds=self.config.sample_timeout_s
            )
            # Launch the next sample now, so it runs while the learner updates on this one.
            self._launch_sample()
        self.metrics.aggregate([metrics for _, (_, metrics) in results], key=ENV_RUNNER_RESULTS)
        return [data for _, (data, _) in results]

    def _launch_sample(self) -> None:
        weights = ray.put(self._weights())
        self.env_runner_group.foreach_env_runner_async(
            "sample_with_metrics",
            tag="sample",
            kwargs={"weights": weights, "global_env_steps": self._env_steps},
        )
        self._sampling = True

    def _weights(self) -> dict[str, Any]:
        """The actors' weights (inference-only module state) for the env runners."""
        state = self.learner_group.get_state(
            components=f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}", inference_only=True
        )[COMPONENT_LEARNER]
        return {COMPONENT_RL_MODULE: state[COMPONENT_RL_MODULE]}

    def _update(self, num_updates: int) -> list[dict[str, Any]]:
        """``num_updates`` updates, one replay minibatch each, in one learner call; the results
        of each learner. The fused update reads the replay sample as it is (``update_joint``),
        the per-module one through RLlib's ``Learner.update``."""
        size = self.config.train_batch_size_per_learner
        sample = self.replay_buffer.sample(size * num_updates)
        timesteps = {NUM_ENV_STEPS_SAMPLED_LIFETIME: self._env_steps, NUM_UPDATES: self._num_updates}
        if self.config.fused_update:
            calls = self.learner_group.foreach_learner(
                lambda learner: learner.update_joint(sample, minibatch_size=size, timesteps=timesteps)
            )
            for call in calls:
                if not call.ok:
                    raise call.get()
            return [call.get() for call in calls]
        return self.learner_group.update(
            batch=joint_train_batch(sample, self._layout),
            minibatch_size=size,
            num_epochs=1,
            shuffle_batch_per_epoch=False,
            timesteps=timesteps,
        )

    # --- checkpoints: counters (and optionally the buffer) next to RLlib's state ---

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        state["maddpg"] = {"env_steps": self._env_steps, "num_updates": self._num_updates}
        if self.config.store_buffer_in_checkpoints:
            state["maddpg"]["replay_buffer"] = self.replay_buffer.get_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if "maddpg" in state:
            self._env_steps = state["maddpg"]["env_steps"]
            self._num_updates = state["maddpg"]["num_updates"]
            if "replay_buffer" in state["maddpg"]:
                self.replay_buffer.set_state(state["maddpg"]["replay_buffer"])
