"""The mpe2 scenarios behind RLlib's MultiAgentEnv API: ids, spaces, options, episode ends."""

import importlib
import inspect

import gymnasium as gym
import numpy as np
import pytest
from mpe2.simple_spread import simple_spread

from ray_maddpg.envs import (
    ENV_NAME,
    SCENARIOS,
    MPEMultiAgentEnv,
    make_env,
    register_mpe_env,
    team_of,
    teams_of,
    validate_env_config,
)
from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg.layout import AgentLayout


def random_actions(env, rng):
    return {
        agent: (
            int(rng.integers(space.n))
            if isinstance(space, gym.spaces.Discrete)
            else rng.uniform(-1, 1, space.shape).astype(np.float32)
        )
        for agent, space in env.action_spaces.items()
    }


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_builds_and_steps_with_sorted_agent_ids(scenario, continuous):
    env = make_env(scenario, continuous_actions=continuous)
    obs, _ = env.reset(seed=0)
    assert env.possible_agents == sorted(env.possible_agents) == list(obs)
    obs, rewards, terminateds, truncateds, _ = env.step(random_actions(env, np.random.default_rng(0)))
    assert list(obs) == list(rewards) == env.possible_agents
    assert "__all__" in terminateds and "__all__" in truncateds
    for agent, observation in obs.items():
        assert env.observation_spaces[agent].contains(observation)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_options_match_the_mpe2_constructor(scenario):
    spec = SCENARIOS[scenario]
    raw_env = importlib.import_module(spec.module).raw_env
    assert set(spec.options) == set(inspect.signature(raw_env.__init__).parameters) - {"self"}


def test_simple_adversary_has_observation_sizes_8_and_10():
    env = make_env("simple_adversary")
    assert env.possible_agents == ["adversary_0", "agent_0", "agent_1"]
    assert AgentLayout.from_env(env).obs_sizes == [8, 10, 10]
    assert env.observation_space["adversary_0"].shape == (8,)


def test_simple_world_comm_exposes_each_agents_own_spaces():
    env = make_env("simple_world_comm")
    assert env.action_spaces["leadadversary_0"].n == 20  # move x say
    assert env.action_spaces["agent_0"].n == 5
    assert AgentLayout.from_env(env).obs_dims["agent_0"] == 28


def test_n_option_sets_the_number_of_simple_spread_agents():
    env = make_env("simple_spread", N=4)
    assert env.possible_agents == ["agent_0", "agent_1", "agent_2", "agent_3"]


def test_episode_ends_at_max_cycles_as_truncation_not_termination():
    env = make_env("simple_spread", max_cycles=3)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ends = [env.step(random_actions(env, rng))[2:4] for _ in range(3)]
    assert [truncateds["__all__"] for _, truncateds in ends] == [False, False, True]
    assert not any(terminateds["__all__"] for terminateds, _ in ends)
    assert all(ends[-1][1][agent] for agent in env.possible_agents)


def test_scenario_end_is_reported_as_termination(monkeypatch):
    env = make_env("simple_spread", terminate_on_success=True)
    env.reset(seed=0)
    monkeypatch.setattr(env.unwrapped_mpe.scenario, "is_terminal", lambda world: True)
    _, _, terminateds, truncateds, _ = env.step(random_actions(env, np.random.default_rng(0)))
    assert terminateds["__all__"] and not truncateds["__all__"]


def test_continuous_actions_are_minus_one_to_one_for_rllib():
    space = make_env("simple_spread", continuous_actions=True).action_spaces["agent_0"]
    assert (space.low.min(), space.high.max()) == (-1.0, 1.0)


def test_continuous_actions_reach_mpe2_mapped_to_zero_one(monkeypatch):
    env = make_env("simple_spread", N=1, continuous_actions=True)
    env.reset(seed=0)
    seen = []
    original = env.unwrapped_mpe._set_action
    monkeypatch.setattr(
        env.unwrapped_mpe,
        "_set_action",
        lambda action, *args: seen.append(action[0].copy()) or original(action, *args),
    )
    env.step({"agent_0": np.array([-1.0, 0.0, 1.0, 0.5, 3.0], np.float32)})
    assert np.allclose(seen[0], [0.0, 0.5, 1.0, 0.75, 1.0])


def test_agent_order_stays_sorted_when_mpe2_lists_agents_in_another_order(monkeypatch):
    make_world = simple_spread.Scenario.make_world

    def reversed_world(self, N=3):
        world = make_world(self, N)
        world.agents.reverse()
        return world

    monkeypatch.setattr(simple_spread.Scenario, "make_world", reversed_world)
    env = make_env("simple_spread")
    assert env.unwrapped_mpe.possible_agents == ["agent_2", "agent_1", "agent_0"]
    assert env.possible_agents == ["agent_0", "agent_1", "agent_2"]
    observations = env.reset_joint(seed=0)
    positions = {agent.name: agent.state.p_pos for agent in env.world.agents}
    # mpe2's simple_spread observation is [self_vel (2), self_pos (2), ...].
    for agent_id, observation in zip(env.possible_agents, observations, strict=True):
        assert np.allclose(observation[2:4], positions[agent_id])


def test_dict_step_and_joint_step_agree():
    by_dict, by_list = make_env("simple_tag"), make_env("simple_tag")
    by_dict.reset(seed=3)
    by_list.reset_joint(seed=3)
    actions = random_actions(by_dict, np.random.default_rng(0))
    obs, rewards, *_ = by_dict.step(actions)
    joint_obs, joint_rewards, _, _ = by_list.step_joint([actions[a] for a in by_list.possible_agents])
    assert all(np.array_equal(obs[a], o) for a, o in zip(by_list.possible_agents, joint_obs, strict=True))
    assert [rewards[a] for a in by_list.possible_agents] == pytest.approx(joint_rewards.tolist())


def test_reset_with_a_seed_is_reproducible():
    env = make_env("simple_spread")
    first, _ = env.reset(seed=42)
    second, _ = env.reset(seed=42)
    assert all(np.array_equal(first[a], second[a]) for a in env.possible_agents)


def test_world_exposes_agent_and_landmark_positions():
    env = make_env("simple_spread")
    env.reset(seed=0)
    assert len(env.world.landmarks) == 3
    assert env.world.agents[0].state.p_pos.shape == (2,)


def test_rgb_array_render_works_headless():
    env = make_env("simple_spread", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


def test_closing_one_env_keeps_rendering_other_envs_working():
    closed, kept = (
        make_env("simple_spread", render_mode="rgb_array"),
        make_env("simple_spread", render_mode="rgb_array"),
    )
    kept.reset(seed=0)
    closed.close()
    assert kept.render().shape[2] == 3


def test_env_config_without_a_scenario_is_rejected():
    with pytest.raises(ConfigError, match="scenario: is required"):
        MPEMultiAgentEnv({"N": 3})


def test_unknown_scenario_error_lists_the_allowed_scenarios():
    with pytest.raises(ConfigError) as err:
        validate_env_config("simple_spred", {})
    assert err.value.problems[0][0] == "env.scenario"
    assert all(name in str(err.value) for name in SCENARIOS)


def test_unknown_option_error_lists_the_scenarios_options():
    with pytest.raises(ConfigError) as err:
        validate_env_config("simple_spread", {"num_good": 2})
    field, message = err.value.problems[0]
    assert field == "env.num_good"
    assert "local_ratio" in message and "max_cycles" in message


def test_every_bad_option_value_is_reported_with_its_dotted_field():
    with pytest.raises(ConfigError) as err:
        validate_env_config(
            "simple_spread", {"N": "3", "local_ratio": 1.5, "continuous_actions": "yes", "max_cycles": 0}
        )
    assert dict(err.value.problems).keys() == {
        "env.N",
        "env.local_ratio",
        "env.continuous_actions",
        "env.max_cycles",
    }
    assert "positive integer" in dict(err.value.problems)["env.N"]


def test_field_prefix_names_where_the_options_live():
    with pytest.raises(ConfigError) as err:
        validate_env_config("simple", {"N": 2}, field_prefix="experiment.env")
    assert err.value.problems[0][0] == "experiment.env.N"


def test_boolean_is_not_accepted_as_a_count():
    with pytest.raises(ConfigError):
        validate_env_config("simple_spread", {"N": True})


def test_the_backend_option_is_checked_and_never_reaches_mpe2(monkeypatch):
    module = importlib.import_module(SCENARIOS["simple"].module)
    raw_env, seen = module.raw_env, []
    monkeypatch.setattr(module, "raw_env", lambda **options: seen.append(options) or raw_env(**options))
    MPEMultiAgentEnv({"scenario": "simple", "backend": "batched", "compile": True, "max_cycles": 5})
    assert seen == [{"max_cycles": 5}]
    with pytest.raises(ConfigError) as err:
        validate_env_config("simple", {"backend": "jax"})
    assert err.value.problems == [("env.backend", "must be one of mpe2, batched (got 'jax')")]


def test_env_compile_is_a_boolean_for_the_batched_backend_only():
    validate_env_config("simple", {"compile": True})  # the default backend is batched
    validate_env_config("simple", {"backend": "mpe2", "compile": False})
    with pytest.raises(ConfigError) as err:
        validate_env_config("simple", {"compile": "yes"})
    assert err.value.problems == [("env.compile", "must be true or false (got 'yes')")]
    with pytest.raises(ConfigError) as err:
        validate_env_config("simple", {"backend": "mpe2", "compile": True})
    assert err.value.problems == [
        ("env.compile", "compiles the batched envs' step; set env.backend: batched")
    ]
    with pytest.raises(ConfigError) as err:
        validate_env_config("simple", {"compiled": True})
    assert err.value.problems[0] == (
        "env.compiled",
        "unknown option for simple; allowed: backend, benchmark_data, compile, continuous_actions, "
        "dynamic_rescaling, max_cycles, render_mode",
    )


def test_the_batched_backend_refuses_render_mode_since_mpe2_stays_the_renderer():
    validate_env_config("simple", {"backend": "mpe2", "render_mode": "rgb_array"})
    with pytest.raises(ConfigError) as err:
        validate_env_config("simple", {"backend": "batched", "render_mode": "rgb_array"})
    field, message = err.value.problems[0]
    assert field == "env.render_mode" and "env.backend: mpe2" in message


def test_env_built_from_rllib_env_config_validates_options():
    with pytest.raises(ConfigError):
        MPEMultiAgentEnv({"scenario": "simple_spread", "N": -1})


def test_registered_env_name_builds_the_env_from_env_config():
    from ray.tune.registry import ENV_CREATOR, _global_registry

    register_mpe_env()
    register_mpe_env()
    env = _global_registry.get(ENV_CREATOR, ENV_NAME)({"scenario": "simple_adversary", "N": 3})
    assert env.possible_agents == ["adversary_0", "agent_0", "agent_1", "agent_2"]


def test_team_of_strips_the_trailing_index():
    assert [team_of(a) for a in ("adversary_0", "agent_12", "leadadversary_0")] == [
        "adversary",
        "agent",
        "leadadversary",
    ]


def test_teams_of_groups_sorted_agent_ids_by_team():
    assert teams_of(["agent_1", "adversary_0", "agent_0"]) == {
        "adversary": ["adversary_0"],
        "agent": ["agent_0", "agent_1"],
    }
