"""How an experiment becomes a Tune run: search spaces, seeds, trial resources (no Ray started)."""

import pytest
from ray import tune

from ray_maddpg.experiment.runner import algorithm_config, trial_fit_problems
from ray_maddpg.experiment.schema import validate_experiment
from ray_maddpg.maddpg import MADDPG

BASE = {
    "name": "t",
    "scenario": "simple_spread",
    "env": {"N": 3},
    "algorithm": {"actor_lr": {"grid_search": [0.01, 0.001]}},
    "stop": {"env_steps": 1000},
}


def config_of(**changes):
    return algorithm_config(validate_experiment({**BASE, **changes}))


def test_grid_in_the_file_becomes_a_tune_grid_in_the_algorithm_config():
    assert config_of().actor_lr == tune.grid_search([0.01, 0.001])


def test_seeds_become_a_grid_over_the_seed():
    assert config_of(tune={"seeds": [3, 4]}).seed == tune.grid_search([3, 4])


def test_env_config_carries_the_scenario_and_its_options():
    assert config_of().env_config == {"scenario": "simple_spread", "N": 3}


@pytest.fixture
def gpu_trial():
    resources = {"num_env_runners": 2, "num_cpus_per_env_runner": 1, "num_gpus_per_learner": 1}
    return MADDPG.default_resource_request(config_of(algorithm={}, resources=resources))


def test_trial_requests_the_learner_gpu_and_one_bundle_per_env_runner(gpu_trial):
    bundles = gpu_trial.bundles
    assert bundles[0].get("GPU") == 1
    assert [b.get("CPU") for b in bundles[1:]] == [1, 1]


def test_trial_bundles_are_packed_so_trials_fill_gpu_workers_one_by_one(gpu_trial):
    assert gpu_trial.strategy == "PACK"


@pytest.mark.parametrize(
    "resources",
    [
        {"num_env_runners": 0},
        {"num_env_runners": 2, "num_cpus_per_env_runner": 1},
        {"num_env_runners": 3, "num_cpus_per_env_runner": 0.5, "num_gpus_per_learner": 1},
    ],
)
def test_the_fit_check_counts_what_rllib_requests_for_a_trial(resources):
    experiment = validate_experiment({**BASE, "algorithm": {}, "resources": resources})
    bundles = MADDPG.default_resource_request(algorithm_config(experiment)).bundles
    cpus, gpus = sum(b.get("CPU", 0) for b in bundles), sum(b.get("GPU", 0) for b in bundles)
    assert trial_fit_problems(experiment.resources, {"CPU": cpus, "GPU": gpus}) == []
    short = trial_fit_problems(experiment.resources, {"CPU": cpus - 0.5, "GPU": max(gpus - 1, 0)})
    assert [field for field, _ in short] == ["resources"] + ["resources.num_gpus_per_learner"] * (gpus > 0)
    assert f"needs {cpus:g} CPUs" in short[0][1]
