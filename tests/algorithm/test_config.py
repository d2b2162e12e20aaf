"""MADDPGConfig: the paper's defaults, the user-facing field list, and clear validation errors."""

from __future__ import annotations

import pytest
from maddpg_helpers import ScriptedEnv

from ray_maddpg.errors import ConfigError
from ray_maddpg.maddpg import MADDPGConfig
from ray_maddpg.maddpg.env_runner import JointEnvRunner
from ray_maddpg.maddpg.maddpg import FIELDS

# The paper's settings except the learning rates (paper: 1e-2 for both; docs/results.md, "The
# learning core on `simple`", has why).
DEFAULTS = {
    "actor_lr": 1e-4,
    "critic_lr": 1e-3,
    "gamma": 0.95,
    "tau": 0.01,
    "train_batch_size_per_learner": 1024,
    "replay_buffer_capacity": 1_000_000,
    "num_steps_sampled_before_learning_starts": 25_600,
    "env_steps_per_update": 100,
    "rollout_fragment_length": "auto",
    "grad_clip": 0.5,
    "actor_logit_penalty": 1e-3,
    "actor_hidden": [64, 64],
    "critic_hidden": [64, 64],
    "critic": "centralized",
    "twin_q": False,
    "policy_delay": 1,
    "target_noise": 0.0,
    "target_noise_clip": 0.5,
    "exploration_noise": 0.1,
    "exploration_noise_final": None,
    "exploration_anneal_steps": 0,
    "gumbel_temperature": 1.0,
    "action_relaxation": None,
    "sequential_update": True,
    "fused_update": True,
    "matmul_dtype": "float32",
    "share_parameters": False,
    "store_buffer_in_checkpoints": False,
}


def test_defaults_are_the_papers_settings_but_the_learning_rates():
    """The paper's (openai/maddpg's) schedule and sizes with actor lr 1e-4 and critic lr 1e-3;
    discrete actions use the 'expected' rule (``action_relaxation: null``), and the critic steps
    before the actor."""
    config = MADDPGConfig()
    assert {name: getattr(config, name) for name in DEFAULTS} == DEFAULTS
    assert config.action_rule_of(discrete=True) == "expected"
    assert config.action_rule_of(discrete=False) == "tanh"


@pytest.mark.parametrize(("num_envs", "steps"), [(1, 100), (8, 100), (16, 50), (64, 13), (1024, 1)])
def test_auto_fragment_keeps_a_sample_near_800_env_steps(num_envs, steps):
    # The policy is synced once per sample: 64 envs x 100 steps learned simple_spread worse.
    assert MADDPGConfig().env_runners(num_envs_per_env_runner=num_envs).get_rollout_fragment_length() == steps
    assert MADDPGConfig().training(rollout_fragment_length=7).get_rollout_fragment_length() == 7


def test_every_setting_is_declared_once_and_its_default_passes_its_own_check():
    config = MADDPGConfig()
    assert set(FIELDS) == set(DEFAULTS) and MADDPGConfig.USER_FIELDS is FIELDS
    for name, field in FIELDS.items():
        assert field.check(getattr(config, name)) is None, name
        assert field.doc, name
    config.validate()


def test_training_takes_every_field_and_refuses_unknown_keywords():
    config = MADDPGConfig().training(**{name: field.default for name, field in FIELDS.items()})
    assert {name: getattr(config, name) for name in DEFAULTS} == DEFAULTS
    with pytest.raises(TypeError):
        MADDPGConfig().training(actor_learning_rate=0.1)


def test_default_env_runner_is_the_joint_runner():
    assert MADDPGConfig().env_runner_cls is JointEnvRunner


def test_training_sets_maddpg_and_rllib_settings():
    config = MADDPGConfig().training(critic="local", twin_q=True, policy_delay=2, gamma=0.9, tau=0.05)
    assert (config.critic, config.twin_q, config.policy_delay, config.gamma, config.tau) == (
        "local",
        True,
        2,
        0.9,
        0.05,
    )


def test_validate_lists_every_bad_field_under_its_dotted_name():
    config = MADDPGConfig().training(
        critic="global",
        tau=0.0,
        policy_delay=0,
        actor_hidden=[64, -1],
        rollout_fragment_length="max",
        matmul_dtype="float16",
    )
    with pytest.raises(ConfigError) as err:
        config.validate()
    fields = {field for field, _ in err.value.problems}
    assert fields == {
        "algorithm.critic",
        "algorithm.tau",
        "algorithm.policy_delay",
        "algorithm.actor_hidden",
        "algorithm.rollout_fragment_length",
        "algorithm.matmul_dtype",
    }
    assert "'centralized', 'local'" in str(err.value)
    assert "must be 'auto' or an integer >= 1" in str(err.value)
    assert "float32, bfloat16" in str(err.value)


def test_validate_accepts_a_critic_kind_per_team():
    MADDPGConfig().training(critic={"adversary": "local", "agent": "centralized"}).validate()


def test_unknown_team_in_a_per_team_setting_is_a_clear_error():
    config = MADDPGConfig().environment("mpe2", env_config={"scenario": "simple_adversary"})
    config.training(critic={"adversaries": "local"})
    with pytest.raises(ConfigError, match="unknown team.*adversaries"):
        config.get_multi_rl_module_spec()


def test_sharing_parameters_in_a_team_of_different_agents_is_a_clear_error():
    config = MADDPGConfig().environment(ScriptedEnv).training(share_parameters=True)
    ScriptedEnv.listed_agents = ["alpha_1", "alpha_0"]
    try:
        # alpha_0 and alpha_1 are homogeneous: sharing works.
        assert list(config.get_multi_rl_module_spec().rl_module_specs) == ["alpha"]
    finally:
        ScriptedEnv.listed_agents = ["zeta_0", "alpha_1", "alpha_0"]

    class Mixed(ScriptedEnv):
        listed_agents = ["zeta_1", "zeta_0"]

        def __init__(self, config=None):
            super().__init__(config)
            self.observation_spaces["zeta_1"] = self.observation_spaces["zeta_0"].__class__(-1, 1, (7,))

    with pytest.raises(ConfigError, match="homogeneous") as err:
        MADDPGConfig().environment(Mixed).training(share_parameters={"zeta": True}).get_multi_rl_module_spec()
    assert err.value.problems[0][0] == "algorithm.share_parameters"
