"""``JointEnvRunner``: a lean EnvRunner that emits joint transitions as arrays.

RLlib's ``MultiAgentEnvRunner`` builds ``MultiAgentEpisode`` objects and runs connector
pipelines per agent and step, which costs 3-8x the mpe2 env itself (DESIGN.md). MADDPG
needs neither: its buffer stores one row per env step for all agents. This runner keeps
what RLlib's ``EnvRunnerGroup`` relies on (the EnvRunner API, ``get_state``/``set_state``
for weight sync, ``get_metrics`` with RLlib's standard keys, restarts) and steps
``num_envs_per_env_runner`` envs with ONE batched actor forward per step for every agent
of every env (``core.JointActors``).

``env_config["backend"]`` says what steps the envs: ``mpe2`` (one mpe2 env object per env,
stepped in a loop) or ``batched`` (all of them as one ``envs.batched.BatchedMPEEnv``, stepped
as tensors by ``BatchedRollout``). Both emit the same rows and log the same metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core import COMPONENT_RL_MODULE
from ray.rllib.env import INPUT_ENV_SPACES
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.env_runner import EnvRunner
from ray.rllib.utils.checkpoints import Checkpointable
from ray.rllib.utils.metrics import (
    EPISODE_AGENT_RETURN_MEAN,
    EPISODE_DURATION_SEC_MEAN,
    EPISODE_LEN_MAX,
    EPISODE_LEN_MEAN,
    EPISODE_LEN_MIN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    EPISODE_RETURN_MIN,
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    WEIGHTS_SEQ_NO,
)

from ray_maddpg.envs.batched import BatchedMPEEnv, make_batched_env
from ray_maddpg.envs.mpe import DEFAULT_BACKEND, ENV_NAME, RUNNER_OPTIONS, MPEMultiAgentEnv
from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg import core
from ray_maddpg.maddpg.batch import JointBatch
from ray_maddpg.memory import keep_freed_memory


def make_joint_env(config) -> Any:
    """Build one env with the joint API (``reset_joint``/``step_joint``) from an AlgorithmConfig."""
    env, env_config = config.env, dict(config.env_config or {})
    if env in (None, ENV_NAME):
        return MPEMultiAgentEnv(env_config)
    if isinstance(env, type):
        return env(env_config)
    from ray.tune.registry import ENV_CREATOR, _global_registry

    if isinstance(env, str) and _global_registry.contains(ENV_CREATOR, env):
        return _global_registry.get(ENV_CREATOR, env)(EnvContext(env_config, worker_index=0))
    raise ConfigError(
        [("env", f"unknown env {env!r}; use {ENV_NAME!r} or an env class with reset_joint/step_joint")]
    )


def env_backend(config) -> str:
    """``env_config["backend"]``: ``mpe2`` or ``batched`` (mpe2's scenarios only); checked by the
    env's option validation (``envs.mpe.validate_env_config``)."""
    backend = (config.env_config or {}).get("backend")
    custom_env = config.env not in (None, ENV_NAME)
    if backend is None:  # another env class steps one object per env, as mpe2 does
        return "mpe2" if custom_env else DEFAULT_BACKEND
    if backend == "batched" and custom_env:
        raise ConfigError([("env.backend", f"'batched' steps the {ENV_NAME!r} scenarios only")])
    return backend


def exploration_sigma(config, env_steps: int) -> float:
    """Gaussian exploration noise for continuous actions, annealed linearly."""
    start = config.exploration_noise
    final = start if config.exploration_noise_final is None else config.exploration_noise_final
    if config.exploration_anneal_steps <= 0:
        return final
    frac = min(1.0, env_steps / config.exploration_anneal_steps)
    return start + frac * (final - start)


@dataclass(frozen=True)
class FinishedEpisodes:
    """The episodes that ended during one rollout, one row each."""

    returns: np.ndarray  # (k, n_agents) every agent's return
    lengths: np.ndarray  # (k,) env steps
    durations: np.ndarray  # (k,) seconds


Policy = Callable[[list[torch.Tensor]], tuple[list[torch.Tensor], list[torch.Tensor]]]
"""Every agent's (B, obs_dim) observations -> (actions as stored, actions in mpe2's units)."""


class BatchedRollout:
    """A runner's envs as one ``BatchedMPEEnv``, stepped as tensors with no loop over envs.

    Per step: one policy call for every agent of every env, one env step, and one slice write
    per output array. Envs whose episode ended are reset with ``reset_done`` after their true
    next observations are recorded. Episode returns accumulate as (B, N) tensors.
    """

    def __init__(self, env: BatchedMPEEnv):
        self.env = env
        self._obs: list[torch.Tensor] | None = None

    def _start(self) -> None:
        n_envs, n_agents = self.env.num_envs, len(self.env.agents)
        self._obs = self.env.reset()
        self._ep_return = torch.zeros(n_envs, n_agents, dtype=torch.float64)
        self._ep_len = torch.zeros(n_envs, dtype=torch.long)
        self._ep_start = torch.full((n_envs,), time.perf_counter(), dtype=torch.float64)

    @torch.no_grad()
    def run(self, steps_per_env: int, policy: Policy) -> tuple[JointBatch, FinishedEpisodes]:
        """``steps_per_env`` steps of every env: ``JointEnvRunner.sample``'s rows, and the episodes
        that ended."""
        if self._obs is None:
            self._start()
        env, n_envs, n_agents = self.env, self.env.num_envs, len(self.env.agents)
        # Every agent's columns side by side; row t of each buffer holds step t of every env.
        obs = torch.empty(steps_per_env, n_envs, sum(env.obs_dims))
        next_obs = torch.empty_like(obs)
        actions = torch.empty(steps_per_env, n_envs, sum(env.act_dims))
        rewards = torch.empty(steps_per_env, n_envs, n_agents)
        terminated = torch.empty(steps_per_env, n_envs, dtype=torch.bool)
        truncated = torch.empty_like(terminated)
        ended: list[tuple[torch.Tensor, ...]] = []

        for t in range(steps_per_env):
            torch.cat(self._obs, dim=1, out=obs[t])
            stored, env_actions = policy(self._obs)
            torch.cat(stored, dim=1, out=actions[t])
            o2, r, term, trunc = env.step(env_actions)
            torch.cat(o2, dim=1, out=next_obs[t])
            rewards[t], terminated[t], truncated[t] = r, term, trunc
            self._ep_return += r
            self._ep_len += 1
            done = term | trunc
            if done.any():
                now = time.perf_counter()
                ended.append((self._ep_return[done], self._ep_len[done], now - self._ep_start[done]))
                self._ep_return[done] = 0.0
                self._ep_len[done] = 0
                self._ep_start[done] = now
                o2 = env.reset_done(done)
            self._obs = o2

        T = steps_per_env * n_envs
        data = JointBatch(
            obs=[o.numpy() for o in obs.view(T, -1).split(env.obs_dims, dim=1)],
            actions=[a.numpy() for a in actions.view(T, -1).split(env.act_dims, dim=1)],
            rewards=rewards.view(T, n_agents).numpy(),
            next_obs=[o.numpy() for o in next_obs.view(T, -1).split(env.obs_dims, dim=1)],
            terminated=terminated.view(T).numpy(),
            truncated=truncated.view(T).numpy(),
        )
        if not ended:
            return data, FinishedEpisodes(np.empty((0, n_agents)), np.empty(0), np.empty(0))
        return data, FinishedEpisodes(*(torch.cat(parts).numpy() for parts in zip(*ended, strict=True)))


class JointEnvRunner(EnvRunner, Checkpointable):
    """Steps a batch of envs; ``sample()`` returns joint transitions as a numpy ``JointBatch``.

    ``terminated`` and ``truncated`` are ``[T]`` (mpe2 ends every agent's episode together).
    ``T = rollout_fragment_length * num_envs_per_env_runner``; row ``t * num_envs + e`` holds
    env ``e`` at step ``t``. With ``env.backend: batched`` the envs are one ``BatchedMPEEnv``
    (``BatchedRollout``), seeded with the runner's seed.
    """

    def __init__(self, *, config, **kwargs):
        super().__init__(config=config, **kwargs)
        Checkpointable.__init__(self)
        # Runners share cores with the learner; torch's default threads collapse then.
        torch.set_num_threads(1)
        keep_freed_memory()
        self.num_envs = int(self.config.num_envs_per_env_runner)
        self._rng = np.random.default_rng(self._seed)
        # Exploration noise has its own stream, so the env seeds do not depend on it.
        self._noise_rng = np.random.default_rng(None if self._seed is None else [self._seed, 1])
        self._weights_seq_no = 0
        self._global_env_steps = 0
        self._batched: BatchedRollout | None = None
        self.make_env()
        self.make_module()

    # --- EnvRunner API ---

    def make_env(self) -> None:
        self.stop()
        # The first mpe2-API env checks env_config (backend included) and gives the layout.
        first = make_joint_env(self.config)
        self.layout = self.config.agent_layout(env=first)
        self.agents = list(self.layout.agents)
        self._obs = None
        if env_backend(self.config) == "batched":
            first.close()
            env_config = self.config.env_config
            options = {k: v for k, v in env_config.items() if k not in ("scenario", *RUNNER_OPTIONS)}
            self.env = make_batched_env(
                env_config["scenario"],
                self.num_envs,
                seed=self._seed,
                compile_step=bool(env_config.get("compile", False)),
                **options,
            )
            self._batched = BatchedRollout(self.env)
        else:
            self.env = [first, *(make_joint_env(self.config) for _ in range(self.num_envs - 1))]
            self._batched = None

    def make_module(self) -> None:
        spec = self.config.get_multi_rl_module_spec(inference_only=True)
        self.module = spec.build()
        self._module_of = self.layout.module_of
        self._rules = [self.module[self._module_of[a]].action_rule for a in self.agents]
        act_kinds = {
            (rule, self.layout.act_dims[a]) for rule, a in zip(self._rules, self.agents, strict=True)
        }
        self._uniform_actions = len(act_kinds) == 1
        # One exploration call per rule group: all agents at once when they act alike.
        self._group_rules = self._rules[:1] if self._uniform_actions else self._rules
        self._build_actors()

    def _build_actors(self) -> None:
        actors = [self.module[self._module_of[a]].actor for a in self.agents]
        self._actors = core.JointActors(actors)

    def assert_healthy(self) -> None:
        assert self.env and self.module

    def get_spaces(self) -> dict:
        layout = self.layout
        spaces = {
            INPUT_ENV_SPACES: (
                gym.spaces.Dict(dict(layout.observation_spaces)),
                gym.spaces.Dict(dict(layout.action_spaces)),
            )
        }
        for aid in self.agents:
            spaces.setdefault(
                self._module_of[aid], (layout.observation_spaces[aid], layout.action_spaces[aid])
            )
        return spaces

    def stop(self) -> None:
        if self._batched is None:
            for env in self.env or []:
                env.close()

    def sample(
        self,
        *,
        num_timesteps: int | None = None,
        explore: bool = True,
        random_actions: bool = False,
        weights: dict | None = None,
        global_env_steps: int | None = None,
        **kwargs,
    ) -> JointBatch:
        """Step every env ``num_timesteps // num_envs`` times (default: rollout_fragment_length).

        ``weights`` (an RLModule state) is applied first, so the driver can sync and
        sample in one remote call; ``global_env_steps`` drives the noise annealing.
        """
        if weights is not None:
            self.set_state(weights)
        if global_env_steps is not None:
            self._global_env_steps = int(global_env_steps)
        steps_per_env = (
            max(1, num_timesteps // self.num_envs)
            if num_timesteps
            else int(self.config.get_rollout_fragment_length())
        )
        sigma = exploration_sigma(self.config, self._global_env_steps)
        if self._batched is None:
            data, episodes = self._rollout(steps_per_env, explore, random_actions, sigma)
        else:

            def policy(obs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
                # Torch noise: no numpy round trip for thousands of envs.
                groups = self._act(obs, explore, random_actions, sigma)
                in_mpe_units = [r.to_mpe_units(a) for r, a in zip(self._group_rules, groups, strict=True)]
                return self._per_agent(groups), self._per_agent(in_mpe_units)

            data, episodes = self._batched.run(steps_per_env, policy)
        self._log_episodes(episodes)
        self._log_steps(len(data))
        return data

    def sample_with_metrics(self, **kwargs) -> tuple[JointBatch, dict]:
        """``sample()`` and ``get_metrics()`` in one (remote) call."""
        return self.sample(**kwargs), self.get_metrics()

    def get_metrics(self) -> dict:
        return self.metrics.reduce()

    # --- acting: one batched actor forward, one exploration call per rule group ---

    @torch.no_grad()
    def _act(
        self,
        obs: list[torch.Tensor],
        explore: bool,
        random_actions: bool,
        sigma: float,
        rng: np.random.Generator | None = None,
    ) -> list[torch.Tensor]:
        """Every agent's action as stored, per rule group (``self._group_rules``): one
        (N, B, act_dim) tensor when all agents act alike, else one (B, act_dim_i) per agent.

        ``rng`` draws the Gumbel noise with numpy (cheaper for a few envs); None uses torch.
        """
        if random_actions:
            n_envs = obs[0].shape[0]
            outs = [torch.randn(n_envs, d) for d in self.layout.act_sizes]
        elif self._actors.homogeneous and self._uniform_actions:
            # One (N, B, obs) tensor in, one (N, B, A) out: no per-agent split and re-stack.
            outs = self._actors.forward_joint(torch.stack(obs))
        else:
            outs = self._actors(obs)
        if self._uniform_actions:
            outs = [outs if isinstance(outs, torch.Tensor) else torch.stack(outs)]
        if explore:
            return [
                rule.explore(out, noise_std=sigma, rng=rng)
                for out, rule in zip(outs, self._group_rules, strict=True)
            ]
        return [rule.greedy(out) for out, rule in zip(outs, self._group_rules, strict=True)]

    def _per_agent(self, groups: list[torch.Tensor]) -> list[torch.Tensor]:
        """``_act``'s rule groups as one tensor per agent (views, no copy)."""
        return list(groups[0].unbind(0)) if self._uniform_actions else groups

    # --- the mpe2 rollout loop (env.backend: mpe2) ---

    def _reset_env(self, index: int) -> list[np.ndarray]:
        seed = None if self._seed is None else int(self._rng.integers(2**31))
        return self.env[index].reset_joint(seed=seed)

    def _rollout(
        self, steps_per_env: int, explore: bool, random_actions: bool, sigma: float
    ) -> tuple[JointBatch, FinishedEpisodes]:
        n_agents, n_envs = len(self.agents), self.num_envs
        if self._obs is None:
            self._obs = [self._reset_env(e) for e in range(n_envs)]
            self._ep_return = np.zeros((n_envs, n_agents), np.float64)
            self._ep_len = np.zeros(n_envs, np.int64)
            self._ep_start = [time.perf_counter()] * n_envs
        obs_dims, act_dims = self.layout.obs_sizes, self.layout.act_sizes
        T = steps_per_env * n_envs
        # Row t * n_envs + e holds env e at step t.
        obs = [np.empty((steps_per_env, n_envs, d), np.float32) for d in obs_dims]
        next_obs = [np.empty((steps_per_env, n_envs, d), np.float32) for d in obs_dims]
        actions = [np.empty((steps_per_env, n_envs, d), np.float32) for d in act_dims]
        rewards = np.empty((steps_per_env, n_envs, n_agents), np.float32)
        terminated = np.zeros((steps_per_env, n_envs), bool)
        truncated = np.zeros((steps_per_env, n_envs), bool)
        ended: list[tuple[np.ndarray, int, float]] = []

        for t in range(steps_per_env):
            for i in range(n_agents):
                for e in range(n_envs):
                    obs[i][t, e] = self._obs[e][i]
            groups = self._act(
                [torch.from_numpy(o[t]) for o in obs], explore, random_actions, sigma, rng=self._noise_rng
            )
            step_actions = [a.numpy() for a in self._per_agent(groups)]
            for i in range(n_agents):
                actions[i][t] = step_actions[i]
            env_actions = [rule.to_env(a) for rule, a in zip(self._rules, step_actions, strict=True)]
            for e in range(n_envs):
                o2, r, term, trunc = self.env[e].step_joint([a[e] for a in env_actions])
                rewards[t, e] = r
                terminated[t, e], truncated[t, e] = term, trunc
                for i in range(n_agents):
                    next_obs[i][t, e] = o2[i]
                self._ep_return[e] += r
                self._ep_len[e] += 1
                if term or trunc:
                    now = time.perf_counter()
                    ended.append((self._ep_return[e].copy(), int(self._ep_len[e]), now - self._ep_start[e]))
                    self._ep_return[e], self._ep_len[e], self._ep_start[e] = 0.0, 0, now
                    o2 = self._reset_env(e)
                self._obs[e] = o2

        data = JointBatch(
            obs=[o.reshape(T, -1) for o in obs],
            actions=[a.reshape(T, -1) for a in actions],
            rewards=rewards.reshape(T, n_agents),
            next_obs=[o.reshape(T, -1) for o in next_obs],
            terminated=terminated.reshape(T),
            truncated=truncated.reshape(T),
        )
        returns, lengths, durations = zip(*ended, strict=True) if ended else ((), (), ())
        episodes = FinishedEpisodes(
            np.reshape(returns, (-1, n_agents)), np.asarray(lengths), np.asarray(durations)
        )
        return data, episodes

    # --- metrics with RLlib's standard keys ---

    def _log_episodes(self, episodes: FinishedEpisodes) -> None:
        """The episodes that ended in one rollout: their means, min and max, and their count."""
        count = len(episodes.lengths)
        if count == 0:
            return
        episodes_in_window = self.config.metrics_num_episodes_for_smoothing // max(
            1, self.config.num_env_runners
        )
        # One logged value per rollout stands for `count` episodes, so the smoothing window
        # (in logged values) covers about `metrics_num_episodes_for_smoothing` episodes, as RLlib's does.
        win = max(1, round(episodes_in_window / count))
        totals = episodes.returns.sum(axis=1)
        agent_means = episodes.returns.mean(axis=0)
        self.metrics.log_dict(
            {
                EPISODE_LEN_MEAN: float(episodes.lengths.mean()),
                EPISODE_RETURN_MEAN: float(totals.mean()),
                EPISODE_DURATION_SEC_MEAN: float(episodes.durations.mean()),
                EPISODE_AGENT_RETURN_MEAN: {
                    aid: float(r) for aid, r in zip(self.agents, agent_means, strict=True)
                },
            },
            window=win,
        )
        self.metrics.log_dict(
            {EPISODE_LEN_MIN: int(episodes.lengths.min()), EPISODE_RETURN_MIN: float(totals.min())},
            reduce="min",
            window=win,
        )
        self.metrics.log_dict(
            {EPISODE_LEN_MAX: int(episodes.lengths.max()), EPISODE_RETURN_MAX: float(totals.max())},
            reduce="max",
            window=win,
        )
        self.metrics.log_value(NUM_EPISODES, count, reduce="sum")
        self.metrics.log_value(NUM_EPISODES_LIFETIME, count, reduce="lifetime_sum")

    def _log_steps(self, num_steps: int) -> None:
        self.num_env_steps_sampled_lifetime += num_steps
        self._global_env_steps += num_steps
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, num_steps, reduce="sum")
        self.metrics.log_value(
            NUM_ENV_STEPS_SAMPLED_LIFETIME, num_steps, reduce="lifetime_sum", with_throughput=True
        )
        for aid in self.agents:
            self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED, aid), num_steps, reduce="sum")
            self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED_LIFETIME, aid), num_steps, reduce="lifetime_sum")

    # --- Checkpointable (weight sync goes through get_state/set_state) ---

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        state = {NUM_ENV_STEPS_SAMPLED_LIFETIME: self.num_env_steps_sampled_lifetime}
        if self._check_component(COMPONENT_RL_MODULE, components, not_components):
            state[COMPONENT_RL_MODULE] = self.module.get_state(
                components=self._get_subcomponents(COMPONENT_RL_MODULE, components),
                not_components=self._get_subcomponents(COMPONENT_RL_MODULE, not_components),
                **kwargs,
            )
            state[WEIGHTS_SEQ_NO] = self._weights_seq_no
        return state

    def set_state(self, state: dict) -> None:
        if COMPONENT_RL_MODULE in state:
            seq_no = state.get(WEIGHTS_SEQ_NO, 0)
            if seq_no == 0 or self._weights_seq_no < seq_no:
                self.module.set_state(state[COMPONENT_RL_MODULE])
                self._actors.sync()
            if seq_no > 0:
                self._weights_seq_no = seq_no
        if NUM_ENV_STEPS_SAMPLED_LIFETIME in state:
            self.num_env_steps_sampled_lifetime = state[NUM_ENV_STEPS_SAMPLED_LIFETIME]

    def get_ctor_args_and_kwargs(self):
        return (), {"config": self.config}

    def get_checkpointable_components(self):
        return [(COMPONENT_RL_MODULE, self.module)]
