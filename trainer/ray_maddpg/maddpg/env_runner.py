"""``JointEnvRunner``: a lean EnvRunner that emits joint transitions as arrays.

RLlib's ``MultiAgentEnvRunner`` builds ``MultiAgentEpisode`` objects and runs connector
pipelines per agent and step, which costs 3-8x the mpe2 env itself (DESIGN.md). MADDPG
needs neither: its buffer stores one row per env step for all agents. This runner keeps
what RLlib's ``EnvRunnerGroup`` relies on (the EnvRunner API, ``get_state``/``set_state``
for weight sync, ``get_metrics`` with RLlib's standard keys, restarts) and steps
``num_envs_per_env_runner`` envs with ONE batched actor forward per step for every agent
of every env (``core.JointActors``).
"""

from __future__ import annotations

import time
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

from ray_maddpg.envs.mpe import ENV_NAME, MPEMultiAgentEnv
from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg import core


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


def agent_layout(env) -> dict[str, Any]:
    """Sorted agent ids and each agent's obs size, action width and action kind."""
    agents = sorted(env.possible_agents)
    obs_dims, act_dims, discrete = {}, {}, {}
    for aid in agents:
        obs_space, act_space = env.observation_spaces[aid], env.action_spaces[aid]
        obs_dims[aid] = int(obs_space.shape[0])
        discrete[aid] = isinstance(act_space, gym.spaces.Discrete)
        act_dims[aid] = int(act_space.n) if discrete[aid] else int(act_space.shape[0])
    return {"agents": agents, "obs_dims": obs_dims, "act_dims": act_dims, "discrete": discrete}


def exploration_sigma(config, env_steps: int) -> float:
    """Gaussian exploration noise for continuous actions, annealed linearly."""
    start = config.exploration_noise
    final = start if config.exploration_noise_final is None else config.exploration_noise_final
    if config.exploration_anneal_steps <= 0:
        return final
    frac = min(1.0, env_steps / config.exploration_anneal_steps)
    return start + frac * (final - start)


class JointEnvRunner(EnvRunner, Checkpointable):
    """Steps a batch of envs; ``sample()`` returns joint transitions as numpy arrays.

    ``sample()`` returns a dict with ``obs``/``next_obs`` (one ``[T, obs_dim]`` array per
    agent, sorted agent order), ``actions`` (one ``[T, act_dim]`` array per agent, as the
    module's ``core.ActionRule`` stores them: one-hot, simplex or [-1, 1]), ``rewards`` ``[T, n_agents]``, ``terminated`` and
    ``truncated`` ``[T]``. ``T = rollout_fragment_length * num_envs_per_env_runner``.
    """

    def __init__(self, *, config, **kwargs):
        super().__init__(config=config, **kwargs)
        Checkpointable.__init__(self)
        # Runners share cores with the learner; torch's default threads collapse then.
        torch.set_num_threads(1)
        self.num_envs = int(self.config.num_envs_per_env_runner)
        self._rng = np.random.default_rng(self._seed)
        # Exploration noise has its own stream, so the env seeds do not depend on it.
        self._noise_rng = np.random.default_rng(None if self._seed is None else [self._seed, 1])
        self._weights_seq_no = 0
        self._global_env_steps = 0
        self.make_env()
        self.make_module()

    # --- EnvRunner API ---

    def make_env(self) -> None:
        if self.env is not None:
            for env in self.env:
                env.close()
        self.env = [make_joint_env(self.config) for _ in range(self.num_envs)]
        self.layout = agent_layout(self.env[0])
        self.agents = self.layout["agents"]
        self._obs = None

    def make_module(self) -> None:
        spec = self.config.get_multi_rl_module_spec(inference_only=True)
        self.module = spec.build()
        self._module_of = self.config.agent_to_module(self.agents)
        self._rules = [self.module[self._module_of[a]].action_rule for a in self.agents]
        act_kinds = {
            (rule, self.layout["act_dims"][a]) for rule, a in zip(self._rules, self.agents, strict=True)
        }
        self._uniform_actions = len(act_kinds) == 1
        self._build_actors()

    def _build_actors(self) -> None:
        actors = [self.module[self._module_of[a]].actor for a in self.agents]
        self._actors = core.JointActors(actors)

    def assert_healthy(self) -> None:
        assert self.env and self.module

    def get_spaces(self) -> dict:
        env = self.env[0]
        spaces = {INPUT_ENV_SPACES: (env.observation_space, env.action_space)}
        for aid in self.agents:
            spaces.setdefault(self._module_of[aid], (env.observation_spaces[aid], env.action_spaces[aid]))
        return spaces

    def stop(self) -> None:
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
    ) -> dict[str, Any]:
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
        return self._rollout(steps_per_env, explore=explore, random_actions=random_actions)

    def sample_with_metrics(self, **kwargs) -> tuple[dict[str, Any], dict]:
        """``sample()`` and ``get_metrics()`` in one (remote) call."""
        return self.sample(**kwargs), self.get_metrics()

    def get_metrics(self) -> dict:
        return self.metrics.reduce()

    # --- the rollout loop ---

    def _reset_env(self, index: int) -> list[np.ndarray]:
        seed = None if self._seed is None else int(self._rng.integers(2**31))
        return self.env[index].reset_joint(seed=seed)

    def _rollout(self, steps_per_env: int, *, explore: bool, random_actions: bool) -> dict[str, Any]:
        n_agents, n_envs = len(self.agents), self.num_envs
        if self._obs is None:
            self._obs = [self._reset_env(e) for e in range(n_envs)]
            self._ep_return = np.zeros((n_envs, n_agents), np.float64)
            self._ep_len = np.zeros(n_envs, np.int64)
            self._ep_start = [time.perf_counter()] * n_envs
        obs_dims = [self.layout["obs_dims"][a] for a in self.agents]
        act_dims = [self.layout["act_dims"][a] for a in self.agents]
        T = steps_per_env * n_envs
        # Row t * n_envs + e holds env e at step t.
        obs = [np.empty((steps_per_env, n_envs, d), np.float32) for d in obs_dims]
        next_obs = [np.empty((steps_per_env, n_envs, d), np.float32) for d in obs_dims]
        actions = [np.empty((steps_per_env, n_envs, d), np.float32) for d in act_dims]
        rewards = np.empty((steps_per_env, n_envs, n_agents), np.float32)
        terminated = np.zeros((steps_per_env, n_envs), bool)
        truncated = np.zeros((steps_per_env, n_envs), bool)
        sigma = exploration_sigma(self.config, self._global_env_steps)

        for t in range(steps_per_env):
            for i in range(n_agents):
                for e in range(n_envs):
                    obs[i][t, e] = self._obs[e][i]
            step_actions = self._act([o[t] for o in obs], explore, random_actions, sigma)
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
                    self._log_episode(e)
                    o2 = self._reset_env(e)
                self._obs[e] = o2

        self._log_steps(T)
        return {
            "obs": [o.reshape(T, -1) for o in obs],
            "actions": [a.reshape(T, -1) for a in actions],
            "rewards": rewards.reshape(T, n_agents),
            "next_obs": [o.reshape(T, -1) for o in next_obs],
            "terminated": terminated.reshape(T),
            "truncated": truncated.reshape(T),
        }

    @torch.no_grad()
    def _act(
        self, obs: list[np.ndarray], explore: bool, random_actions: bool, sigma: float
    ) -> list[np.ndarray]:
        """One batched actor forward for all agents and envs; returns per-agent action arrays."""
        if random_actions:
            n_envs = obs[0].shape[0]
            outs = [torch.randn(n_envs, self.layout["act_dims"][a]) for a in self.agents]
        elif self._actors.homogeneous and self._uniform_actions:
            # One (N, B, obs) tensor in, one (N, B, A) out: no per-agent split and re-stack.
            outs = self._actors.forward_joint(torch.from_numpy(np.stack(obs)))
        else:
            outs = self._actors([torch.from_numpy(o) for o in obs])
        if self._uniform_actions:
            # All agents alike: one exploration call for the stacked (N, B, A) outputs.
            outs = [outs if isinstance(outs, torch.Tensor) else torch.stack(outs)]
        rules = self._rules[: len(outs)]
        if explore:
            acts = [
                rule.explore(out, noise_std=sigma, rng=self._noise_rng)
                for out, rule in zip(outs, rules, strict=True)
            ]
        else:
            acts = [rule.greedy(out) for out, rule in zip(outs, rules, strict=True)]
        if self._uniform_actions:
            return list(acts[0].numpy())
        return [a.numpy() for a in acts]

    # --- metrics with RLlib's standard keys ---

    def _log_episode(self, e: int) -> None:
        win = max(1, self.config.metrics_num_episodes_for_smoothing // max(1, self.config.num_env_runners))
        ret = self._ep_return[e]
        agent_returns = {aid: float(r) for aid, r in zip(self.agents, ret, strict=True)}
        length = int(self._ep_len[e])
        now = time.perf_counter()
        self.metrics.log_dict(
            {
                EPISODE_LEN_MEAN: length,
                EPISODE_RETURN_MEAN: float(ret.sum()),
                EPISODE_DURATION_SEC_MEAN: now - self._ep_start[e],
                EPISODE_AGENT_RETURN_MEAN: agent_returns,
            },
            window=win,
        )
        self.metrics.log_dict(
            {EPISODE_LEN_MIN: length, EPISODE_RETURN_MIN: float(ret.sum())}, reduce="min", window=win
        )
        self.metrics.log_dict(
            {EPISODE_LEN_MAX: length, EPISODE_RETURN_MAX: float(ret.sum())}, reduce="max", window=win
        )
        self.metrics.log_value(NUM_EPISODES, 1, reduce="sum")
        self.metrics.log_value(NUM_EPISODES_LIFETIME, 1, reduce="lifetime_sum")
        self._ep_return[e] = 0.0
        self._ep_len[e] = 0
        self._ep_start[e] = now

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
