"""The fused learner against the per-module learner: same weights and batches in, same weights out.

Both paths start from one learner's initial networks and take the same joint batches. The
comparison runs in float64, so that any difference beyond rounding (1e-9 here, against changes of
about 1e-2 per update) is a difference in the update itself. Both paths draw their random noise
(Gumbel samples, target smoothing) from torch's generator in the same order, so seeding it alike
makes them draw the same numbers.
"""

from __future__ import annotations

import copy
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from maddpg_helpers import built_learner, small_config
from ray.rllib.policy.sample_batch import MultiAgentBatch

from ray_maddpg.maddpg.batch import JointBatch
from ray_maddpg.maddpg.fused import FusedMADDPG
from ray_maddpg.maddpg.maddpg import joint_train_batch, random_replay
from ray_maddpg.maddpg.torch.maddpg_torch_learner import NUM_UPDATES

NETWORKS = ("actor", "critic", "target_actor", "target_critic")
ROWS = 64
TOLERANCE = dict(rtol=1e-9, atol=1e-9)


def _batches(config, count: int, dtype=torch.float64) -> list[tuple[MultiAgentBatch, dict, JointBatch]]:
    """``count`` joint batches of ROWS rows, each three ways: as RLlib's ``Learner.update``
    takes it, as the per-module update takes it (module id -> tensors, agents along axis 1,
    in ``dtype``) and as the fused update takes it (per-agent tensors in ``dtype``)."""
    buffer, layout = random_replay(config, 200), config.agent_layout()

    def tensor(array):
        t = torch.as_tensor(np.asarray(array))
        return t.to(dtype) if t.is_floating_point() else t

    batches = []
    for _ in range(count):
        sample = buffer.sample(ROWS)
        rllib_batch = joint_train_batch(sample, layout)
        per_module = {
            mid: {k: tensor(v) for k, v in b.items()} for mid, b in rllib_batch.policy_batches.items()
        }
        batches.append((rllib_batch, per_module, sample.map(tensor)))
    return batches


def _copy(module) -> SimpleNamespace:
    """What the fused learner needs of a module, with its own copies of the networks."""
    return SimpleNamespace(
        **{name: copy.deepcopy(getattr(module, name)) for name in NETWORKS},
        agents=module.agents,
        all_agents=module.all_agents,
        action_rule=module.action_rule,
        critic_kind=module.critic_kind,
    )


def _float64_learner(config):
    torch.manual_seed(0)
    learner = built_learner(config)
    modules = {mid: learner.module[mid].unwrapped() for mid in learner.module.keys()}
    for module in modules.values():
        module.to(torch.float64)  # in place: the optimizers keep their parameters
    return learner, modules


def _assert_same_networks(modules, copies, **tolerance) -> None:
    for mid, module in modules.items():
        for name in NETWORKS:
            for want, got in zip(
                getattr(module, name).parameters(), getattr(copies[mid], name).parameters(), strict=True
            ):
                torch.testing.assert_close(
                    got, want, **(tolerance or TOLERANCE), msg=lambda m, n=f"{mid}.{name}": f"{n}: {m}"
                )


CASES = {
    "centralized-straight_through": ("simple_spread", None, {}),
    "simultaneous-order": ("simple_spread", None, {"sequential_update": False}),
    "local-and-centralized-heterogeneous": ("simple_adversary", None, {"critic": {"adversary": "local"}}),
    "matd3-continuous": (
        "simple_spread",
        {"continuous_actions": True},
        {"twin_q": True, "policy_delay": 2, "target_noise": 0.2},
    ),
    "shared-team-and-single-agent": ("simple_tag", None, {"share_parameters": {"adversary": True}}),
    "shared-simplex-local-twin": (
        "simple_spread",
        {"continuous_actions": True},
        {"action_relaxation": "simplex", "share_parameters": True, "critic": "local", "twin_q": True},
    ),
    "speaker-listener-expected": (
        "simple_speaker_listener",
        None,
        {"action_relaxation": "expected"},
    ),
    "expected-shared-team-local-and-centralized": (
        "simple_tag",
        None,
        {
            "action_relaxation": "expected",
            "share_parameters": {"adversary": True},
            "critic": {"agent": "local"},
        },
    ),
    "speaker-listener-mixed-simultaneous": (
        "simple_speaker_listener",
        None,
        {"action_relaxation": "mixed", "sequential_update": False},
    ),
}


@pytest.mark.parametrize(("scenario", "env_options", "training"), CASES.values(), ids=CASES.keys())
def test_fused_updates_equal_the_per_module_learners_after_one_and_five_updates(
    scenario, env_options, training
):
    config = small_config(scenario, env_options=env_options, **training)
    learner, modules = _float64_learner(config)
    copies = {mid: _copy(m) for mid, m in modules.items()}
    fused = FusedMADDPG.from_modules(copies, config)
    # Each path keeps its own stream of torch's generator, both from one seed.
    torch.manual_seed(1)
    fused_rng = per_module_rng = torch.get_rng_state()
    for i, (_, per_module, per_agent) in enumerate(_batches(config, 5)):
        torch.set_rng_state(fused_rng)
        metrics = fused.update(per_agent)
        fused_rng = torch.get_rng_state()
        torch.set_rng_state(per_module_rng)
        learner._per_module_update(per_module)
        per_module_rng = torch.get_rng_state()
        if i in (0, 4):
            fused.write_back(copies)
            _assert_same_networks(modules, copies)
        if i == 0:
            for mid in modules:
                for name in ("critic_loss", "q_mean", "target_q_mean", "actor_loss"):
                    logged = torch.as_tensor(learner.metrics.peek((mid, name)), dtype=torch.float64)
                    torch.testing.assert_close(metrics[mid][name], logged, **TOLERANCE)


def test_the_fused_learner_stacks_modules_of_one_shape_and_keeps_the_others_apart():
    config = small_config("simple_world_comm")
    learner, modules = _float64_learner(config)
    fused = FusedMADDPG.from_modules(modules, config)
    assert [g.module_ids for g in fused.actors] == [
        ["adversary_0", "adversary_1", "adversary_2"],
        ["agent_0", "agent_1"],
        ["leadadversary_0"],
    ]
    # Centralized critics all read every agent's observation and action: one group.
    assert [g.module_ids for g in fused.critics] == [sorted(modules)]


def test_either_path_resumes_the_other_exactly_through_write_back_and_load_from():
    """Weights and Adam's state go both ways: per-module updates 0 and 1, then fused update 2,
    then per-module update 3 equal four per-module updates (a TD3 delay of 2 counts along)."""
    config = small_config("simple_adversary", env_options={"continuous_actions": True}, policy_delay=2)
    batches = _batches(config, 4)
    reference, reference_modules = _float64_learner(config)
    for _, per_module, _ in batches:
        reference._per_module_update(per_module)

    learner, modules = _float64_learner(config)
    optimizers = {
        mid: {net: learner.get_optimizer(mid, net) for net in ("actor", "critic")} for mid in modules
    }
    for _, per_module, _ in batches[:2]:
        learner._per_module_update(per_module)
    fused = FusedMADDPG.from_modules(modules, config)
    fused.load_from(modules, optimizers)
    fused.num_updates = 2
    fused.update(batches[2][2])
    fused.write_back(modules, optimizers)
    learner._next_update = 3
    learner._per_module_update(batches[3][1])
    _assert_same_networks(reference_modules, modules)


def test_the_public_learner_update_in_float32_agrees_to_1e_5():
    """Through RLlib's own ``Learner.update`` (its batch conversion, float32): five updates."""
    config = small_config("simple_spread", fused_update=False)
    torch.manual_seed(0)
    learner = built_learner(config)
    modules = {mid: learner.module[mid].unwrapped() for mid in learner.module.keys()}
    copies = {mid: _copy(m) for mid, m in modules.items()}
    fused = FusedMADDPG.from_modules(copies, config)
    batches = _batches(config, 5, dtype=torch.float32)
    torch.manual_seed(1)
    for _, _, per_agent in batches:
        fused.update(per_agent)
    fused.write_back(copies)
    torch.manual_seed(1)
    for i, (rllib_batch, _, _) in enumerate(batches):
        learner.update(batch=rllib_batch, timesteps={"num_env_steps_sampled_lifetime": 0, NUM_UPDATES: i})
    _assert_same_networks(modules, copies, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "simultaneous"])
def test_the_learner_with_fused_update_equals_the_per_module_learner(sequential):
    """``fused_update: true`` wired into RLlib's ``Learner.update``: five updates, and the state
    a checkpoint reads (weights and Adam's moments) agree with ``fused_update: false``. In float32
    Adam turns rounding in tiny gradients into differences near 1e-5 after a few updates (the
    float64 tests above pin the math to 1e-9); a wiring mistake moves weights by about 1e-2."""
    learners = {}
    for fused in (True, False):
        config = small_config("simple_adversary", fused_update=fused, sequential_update=sequential)
        torch.manual_seed(0)
        learners[fused] = built_learner(config)
    batches = _batches(config, 5, dtype=torch.float32)
    for learner in learners.values():
        torch.manual_seed(1)
        for i, (rllib_batch, _, _) in enumerate(batches):
            learner.update(batch=rllib_batch, timesteps={"num_env_steps_sampled_lifetime": 0, NUM_UPDATES: i})
    fused, per_module = learners[True], learners[False]
    modules = {mid: per_module.module[mid].unwrapped() for mid in per_module.module.keys()}
    copies = {mid: fused.module[mid].unwrapped() for mid in fused.module.keys()}
    _assert_same_networks(modules, copies, rtol=1e-4, atol=1e-4)
    fused_state, per_module_state = fused.get_state(), per_module.get_state()
    for mid in modules:
        for name in ("actor", "critic"):
            want = per_module_state["optimizer"][f"{mid}_{name}"]["state"]
            got = fused_state["optimizer"][f"{mid}_{name}"]["state"]
            for p_want, p_got in zip(want["state"].values(), got["state"].values(), strict=True):
                for key in ("exp_avg", "exp_avg_sq"):
                    torch.testing.assert_close(
                        torch.as_tensor(p_got[key]), torch.as_tensor(p_want[key]), rtol=1e-4, atol=1e-6
                    )


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "per-module"])
def test_matmul_dtype_bfloat16_reaches_either_learner_path_and_changes_only_rounding(fused):
    """``matmul_dtype: bfloat16`` through RLlib's ``Learner.update``: three updates move the
    weights as float32 does up to bf16 rounding (a few percent of the change; a wrong or missing
    step would differ by about all of it), and the weights stay float32."""
    moved = {}
    for dtype in ("float32", "bfloat16"):
        config = small_config("simple_adversary", fused_update=fused, matmul_dtype=dtype)
        torch.manual_seed(0)
        learner = built_learner(config)
        nets = [
            n
            for mid in learner.module.keys()
            for n in (learner.module[mid].unwrapped().actor, learner.module[mid].unwrapped().critic)
        ]
        start = [p.detach().clone() for net in nets for p in net.parameters()]
        torch.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a CPU without AVX512-BF16 runs it slowly
            for i, (rllib_batch, _, _) in enumerate(_batches(config, 3, dtype=torch.float32)):
                learner.update(
                    batch=rllib_batch, timesteps={"num_env_steps_sampled_lifetime": 0, NUM_UPDATES: i}
                )
        now = [p.detach() for net in nets for p in net.parameters()]
        assert {p.dtype for p in now} == {torch.float32}
        moved[dtype] = torch.cat([(p - s).flatten() for p, s in zip(now, start, strict=True)])
    relative = ((moved["bfloat16"] - moved["float32"]).norm() / moved["float32"].norm()).item()
    assert 0 < relative < 0.2, relative
