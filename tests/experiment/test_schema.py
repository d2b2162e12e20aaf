"""Experiment files: loading, --set overrides, and whole-file validation before any Ray work."""

from pathlib import Path

import pytest
import yaml

from ray_maddpg.errors import ConfigError
from ray_maddpg.experiment.schema import (
    apply_overrides,
    grid_size,
    load_experiment,
    to_tune_space,
    validate_experiment,
)

EXPERIMENTS = Path(__file__).resolve().parents[2] / "trainer" / "ray_maddpg" / "presets"

VALID = {
    "name": "t",
    "scenario": "simple_spread",
    "env": {"N": 3, "max_cycles": 25},
    "algorithm": {"actor_lr": 0.01, "critic": "centralized"},
    "stop": {"env_steps": 1000},
}


def problems_of(data) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        validate_experiment(data)
    return dict(err.value.problems)


def with_(**changes):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in VALID.items()}
    data.update(changes)
    return data


def test_valid_file_becomes_an_experiment_with_defaults_for_missing_sections():
    experiment = validate_experiment(VALID)
    assert (experiment.name, experiment.scenario, experiment.checkpoint.keep) == ("t", "simple_spread", 3)
    assert experiment.env_config == {"scenario": "simple_spread", "N": 3, "max_cycles": 25}


def test_every_invalid_field_is_reported_at_once_by_dotted_name():
    bad = with_(
        extra=1,
        env={"N": 0, "colour": "red"},
        algorithm={"actor_lr": -1, "gamma": "high", "learning_rate": 1},
        stop={"env_steps": 0},
        checkpoint={"keep": 0},
        tune={"num_samples": "two"},
    )
    assert set(problems_of(bad)) == {
        "extra",
        "env.N",
        "env.colour",
        "algorithm.actor_lr",
        "algorithm.gamma",
        "algorithm.learning_rate",
        "stop.env_steps",
        "checkpoint.keep",
        "tune.num_samples",
    }


def test_unknown_key_message_lists_what_is_allowed():
    assert "allowed: env_steps, training_iteration" in problems_of(with_(stop={"steps": 5}))["stop.steps"]


def test_unknown_scenario_is_reported_under_scenario():
    assert "simple_spread" in problems_of(with_(scenario="simple_sprad", env={}))["scenario"]


def test_wrong_type_in_a_resource_is_reported_with_the_value():
    message = problems_of(with_(resources={"num_env_runners": "two"}))["resources.num_env_runners"]
    assert message == "must be an integer >= 0 (got 'two')"


def test_booleans_are_not_accepted_as_integers():
    assert "stop.training_iteration" in problems_of(with_(stop={"training_iteration": True}))


def test_a_stop_condition_is_required():
    assert "stop" in problems_of(with_(stop={}))


def test_a_run_can_stop_once_an_env_runner_was_restored():
    stop = validate_experiment(with_(stop={"env_runner_restarts": 1, "time_total_s": 600})).stop
    assert stop == {"env_runner_restarts": 1, "time_total_s": 600}
    assert "stop.env_runner_restarts" in problems_of(with_(stop={"env_runner_restarts": 0}))


def test_per_team_critic_is_checked_against_the_scenario_teams():
    bad = with_(scenario="simple_adversary", env={}, algorithm={"critic": {"predator": "local"}})
    assert "predator" in problems_of(bad)["algorithm.critic"]


def test_checking_a_file_builds_no_env(monkeypatch):
    def no_env(*args, **kwargs):
        raise AssertionError("an env was built to check an experiment file")

    monkeypatch.setattr("mpe2.simple_tag_v3.raw_env.__init__", no_env)
    monkeypatch.setattr("ray_maddpg.envs.batched.env.BatchedMPEEnv.__init__", no_env)
    teams = {"adversary": "local", "agent": "centralized"}
    for backend in ("mpe2", "batched"):
        env = {"backend": backend, "num_adversaries": 2}
        validate_experiment(with_(scenario="simple_tag", env=env, algorithm={"critic": teams}))
        bad = with_(scenario="simple_tag", env=env, algorithm={"share_parameters": {"prey": True}})
        assert problems_of(bad)["algorithm.share_parameters"] == (
            "unknown team(s) ['prey']; teams: ['adversary', 'agent']"
        )


def test_world_comm_needs_food_on_either_backend():
    for backend in ("mpe2", "batched"):
        bad = with_(scenario="simple_world_comm", env={"backend": backend, "num_food": 0})
        assert "needs food" in problems_of(bad)["env.num_food"]


def test_env_backend_is_batched_or_mpe2_and_reaches_the_env_config():
    experiment = validate_experiment(with_(env={"backend": "batched"}))
    assert experiment.env_config == {"scenario": "simple_spread", "backend": "batched"}
    message = problems_of(with_(env={"backend": "gpu"}))["env.backend"]
    assert message == "must be one of mpe2, batched (got 'gpu')"
    assert "env.render_mode" in problems_of(with_(env={"backend": "batched", "render_mode": "human"}))


def test_env_compile_reaches_the_env_config_and_needs_the_batched_backend():
    experiment = validate_experiment(with_(env={"compile": True}))
    assert experiment.env_config == {"scenario": "simple_spread", "compile": True}
    assert problems_of(with_(env={"backend": "mpe2", "compile": True}))["env.compile"] == (
        "compiles the batched envs' step; set env.backend: batched"
    )


def test_each_grid_value_is_validated():
    bad = with_(algorithm={"actor_lr": {"grid_search": [0.01, -0.5]}})
    assert "-0.5" in problems_of(bad)["algorithm.actor_lr"]


def test_grid_over_env_options_is_validated_per_value():
    assert "env.N" in problems_of(with_(env={"N": {"choice": [2, 0]}}))


def test_empty_grid_is_rejected():
    assert (
        "non-empty list"
        in problems_of(with_(algorithm={"actor_lr": {"grid_search": []}}))["algorithm.actor_lr"]
    )


def test_search_spaces_are_rejected_outside_env_and_algorithm():
    assert "stop.env_steps" in problems_of(with_(stop={"env_steps": {"grid_search": [1, 2]}}))


def test_grid_search_and_choice_become_tune_search_spaces():
    space = to_tune_space({"actor_lr": {"grid_search": [0.1, 0.01]}, "N": {"choice": [2, 3]}, "tau": 0.01})
    assert space["actor_lr"] == {"grid_search": [0.1, 0.01]}
    assert sorted(space["N"].categories) == [2, 3]
    assert space["tau"] == 0.01


def test_grid_size_multiplies_grid_points_seeds_and_samples():
    data = with_(
        algorithm={"actor_lr": {"grid_search": [0.1, 0.01, 0.001]}}, tune={"seeds": [0, 1], "num_samples": 2}
    )
    assert grid_size(validate_experiment(data)) == 12


def test_overrides_are_parsed_as_yaml_and_create_missing_sections():
    data = apply_overrides(
        VALID, ["algorithm.actor_lr=1e-3", "stop.training_iteration=5", "tune.seeds=[1, 2]"]
    )
    assert data["algorithm"]["actor_lr"] == 0.001
    assert data["stop"] == {"env_steps": 1000, "training_iteration": 5}
    assert data["tune"]["seeds"] == [1, 2]


def test_overrides_leave_the_original_untouched():
    apply_overrides(VALID, ["env.N=5"])
    assert VALID["env"]["N"] == 3


def test_override_through_a_plain_value_is_an_error():
    with pytest.raises(ConfigError) as err:
        apply_overrides(VALID, ["scenario.name=x"])
    assert err.value.problems[0][0] == "scenario"


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides(VALID, ["algorithm.actor_lr"])


def test_overrides_are_validated_like_the_file(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(VALID))
    with pytest.raises(ConfigError, match="algorithm.actor_lr"):
        load_experiment(path, ["algorithm.actor_lr=-1"])


def test_malformed_yaml_is_reported_with_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nenv: {N: 3\nstop: {}\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        load_experiment(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_experiment(tmp_path / "nope.yaml")


def test_name_defaults_to_the_file_name(tmp_path):
    data = {k: v for k, v in VALID.items() if k != "name"}
    path = tmp_path / "my-run.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_experiment(path).name == "my-run"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiment_files_are_valid(path):
    assert load_experiment(path).name
