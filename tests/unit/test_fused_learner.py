"""The fused learner's parts without Ray: stacked networks, per-network clipping, one Adam for
many networks, the critic input layout, and syncing with the per-module networks.

Its updates are checked against the RLlib per-module learner in
``tests/algorithm/test_fused_learner_equivalence.py``.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch

from ray_maddpg.maddpg import core
from ray_maddpg.maddpg.batch import JointBatch
from ray_maddpg.maddpg.fused import (
    FusedMADDPG,
    FusedSettings,
    StackedMLP,
    clip_per_network,
    own_action_columns,
    plain_module,
)

torch.set_num_threads(1)

OBS = {"a_0": 4, "a_1": 4, "b_0": 3}
ACT = {"a_0": 2, "a_1": 2, "b_0": 5}
AGENTS = sorted(OBS)
B = 16


def module(agents, critic_kind="centralized", twin=False, rule="tanh"):
    """A stand-in for ``MADDPGTorchRLModule``: the networks and what the learner reads of it."""
    return plain_module(
        agents,
        AGENTS,
        OBS,
        ACT,
        critic_kind=critic_kind,
        twin_q=twin,
        action_rule=rule,
        actor_hidden=(8, 8),
        critic_hidden=(8, 8),
    )


def modules(**kwargs):
    """A shared team "a" (a_0, a_1) and a single agent b_0 of another shape."""
    torch.manual_seed(0)
    return {"a": module(["a_0", "a_1"], **kwargs), "b_0": module(["b_0"], **kwargs)}


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = [torch.randn(B, OBS[a], generator=g) for a in AGENTS]
    actions = [torch.rand(B, ACT[a], generator=g) * 2 - 1 for a in AGENTS]
    next_obs = [torch.randn(B, OBS[a], generator=g) for a in AGENTS]
    rewards = torch.randn(B, len(AGENTS), generator=g)
    terminated = torch.rand(B, len(AGENTS), generator=g) < 0.1
    return JointBatch(obs, actions, rewards, next_obs, terminated, torch.zeros_like(terminated))


def params(nets) -> list[torch.Tensor]:
    return [p.detach().clone() for net in nets for p in net.parameters()]


def test_a_stack_computes_what_each_of_its_mlps_computes():
    mlps = [core.MLP(5, 3, (7, 6)) for _ in range(3)]
    stack = StackedMLP(mlps, requires_grad=True)
    x = torch.randn(3, 10, 5)
    out = stack(x)
    for k, mlp in enumerate(mlps):
        torch.testing.assert_close(out[k], mlp(x[k]))
        for view, param in zip(stack.network(k), mlp.parameters(), strict=True):
            assert torch.equal(view, param)
    # Layers in two parts, and some networks only (every other one).
    torch.testing.assert_close(
        stack(stack(x[::2], slice(None, None, 2), stop=1), slice(None, None, 2), start=1), out[::2]
    )


def test_mlps_of_different_shapes_are_not_stacked():
    with pytest.raises(ValueError, match="one shape"):
        StackedMLP([core.MLP(5, 3), core.MLP(4, 3)], requires_grad=False)


def test_each_network_is_clipped_by_its_own_global_norm_as_rllib_clips_it():
    # Network 0 (twin slices 0, 1) has norm 13 > 0.5 and is scaled; network 1 (slices 2, 3) has
    # norm 0.3 and is left alone.
    weights = torch.zeros(4, 2, 2)
    biases = torch.zeros(4, 1, 2)
    weights[0, 0, 0], weights[1, 1, 1], biases[0, 0, 0] = 3.0, 4.0, 12.0
    weights[2, 0, 0], biases[3, 0, 1] = 0.1, torch.tensor(0.08).sqrt()
    grads = [weights.clone(), biases.clone()]
    norms = clip_per_network(grads, num_networks=2, max_norm=0.5)
    torch.testing.assert_close(norms, torch.tensor([13.0, 0.3]))
    # RLlib: coefficient = grad_clip / max(norm + 1e-6, grad_clip), at most 1.
    scale = 0.5 / (13.0 + 1e-6)
    torch.testing.assert_close(grads[0][:2], weights[:2] * scale)
    torch.testing.assert_close(grads[1][:2], biases[:2] * scale)
    assert torch.equal(grads[0][2:], weights[2:]) and torch.equal(grads[1][2:], biases[2:])


def test_one_adam_over_stacked_weights_steps_each_slice_as_its_own_adam_would():
    torch.manual_seed(0)
    separate = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    stacked = torch.stack([p.detach() for p in separate]).requires_grad_()
    optimizers = [torch.optim.Adam([p], lr=1e-2) for p in separate]
    fused = torch.optim.Adam([stacked], lr=1e-2, fused=True)
    for _ in range(5):
        grads = torch.randn(3, 4, 3) * torch.tensor([1e-3, 1.0, 1e3]).view(3, 1, 1)
        for p, g, opt in zip(separate, grads, optimizers, strict=True):
            p.grad = g.clone()
            opt.step()
        stacked.grad = grads
        fused.step()
    torch.testing.assert_close(stacked, torch.stack(separate), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("critic_kind", ["centralized", "local"])
def test_own_action_columns_point_at_the_agents_action_in_its_critic_input(critic_kind):
    b = batch()
    obs, actions = dict(zip(AGENTS, b.obs, strict=True)), dict(zip(AGENTS, b.actions, strict=True))
    for m in modules(critic_kind=critic_kind).values():
        for j, aid in enumerate(m.agents):
            x = core.critic_input(m, j, obs, actions)
            assert x.shape[1] == m.critic.q_nets[0][0].in_features
            assert torch.equal(x[:, own_action_columns(m, aid, OBS, ACT)], actions[aid])


def test_team_members_and_agents_of_other_shapes_form_separate_groups():
    fused = FusedMADDPG(modules(), FusedSettings())
    assert [g.module_ids for g in fused.actors] == [["a"], ["b_0"]]
    assert [g.agents_per_module for g in fused.actors] == [2, 1]


def test_a_module_learns_only_from_its_own_loss():
    """Agent b_0's rewards enter only module b_0's critic target; module "a" must not notice."""
    results = []
    for reward_of_b in (0.0, 10.0):
        mods = modules(twin=True)
        fused = FusedMADDPG(mods, FusedSettings())
        b = batch()
        b.rewards[:, AGENTS.index("b_0")] = reward_of_b
        fused.update(b)
        fused.write_back(mods)
        results.append({mid: params([m.actor, m.critic, m.target_critic]) for mid, m in mods.items()})
    for before, after in zip(results[0]["a"], results[1]["a"], strict=True):
        assert torch.equal(before, after)
    assert any(not torch.equal(x, y) for x, y in zip(results[0]["b_0"], results[1]["b_0"], strict=True))


def test_write_back_and_load_from_carry_weights_and_adam_state_both_ways():
    mods, fresh = modules(twin=True), modules(twin=True)
    fused = FusedMADDPG(mods, FusedSettings())
    for seed in range(2):
        fused.update(batch(seed))
    optimizers = {
        mid: {
            "actor": torch.optim.Adam(m.actor.parameters()),
            "critic": torch.optim.Adam(m.critic.parameters()),
        }
        for mid, m in fresh.items()
    }
    fused.write_back(fresh, optimizers)
    state = optimizers["a"]["critic"].state[next(fresh["a"].critic.parameters())]
    assert float(state["step"]) == 2.0 and state["exp_avg"].shape == (
        8,
        fresh["a"].critic.q_nets[0][0].in_features,
    )

    again = FusedMADDPG(modules(twin=True), FusedSettings())
    again.load_from(fresh, optimizers)
    fused.update(batch(2))
    again.update(batch(2))
    for ours, theirs in zip((*fused.actors, *fused.critics), (*again.actors, *again.critics), strict=True):
        for p, q in zip(
            ours.net.params + ours.target.params, theirs.net.params + theirs.target.params, strict=True
        ):
            torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_modules_must_serve_every_agent_once():
    mods = modules()
    del mods["b_0"]
    with pytest.raises(ValueError, match="every agent"):
        FusedMADDPG(mods, FusedSettings())


def test_settings_come_from_a_config_and_refuse_other_clipping():
    config = SimpleNamespace(**vars(FusedSettings(gamma=0.9, policy_delay=2)), grad_clip_by="global_norm")
    assert FusedSettings.from_config(config) == FusedSettings(gamma=0.9, policy_delay=2)
    config.grad_clip_by = "value"
    with pytest.raises(ValueError, match="global norm"):
        FusedSettings.from_config(config)


def test_the_fused_learner_imports_without_ray():
    code = "import sys, ray_maddpg.maddpg.fused; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _updated_twice(
    compile_losses: bool, settings: FusedSettings | None = None, **module_kwargs
) -> list[torch.Tensor]:
    """Every weight (networks and targets) after two updates on fixed batches."""
    mods = modules(**module_kwargs)
    fused = FusedMADDPG(mods, settings or FusedSettings(), compile_losses=compile_losses)
    for seed in (0, 1):
        torch.manual_seed(seed)  # the same noise draws both ways
        fused.update(batch(seed))
    return [p.detach().clone() for group in (*fused.actors, *fused.critics) for p in group.net.params] + [
        p.clone() for group in (*fused.actors, *fused.critics) for p in group.target.params
    ]


def test_a_compiled_update_equals_the_eager_one():
    # The default discrete rule, a shared team, actions of two widths and twin critics.
    kwargs = {"rule": "expected", "twin": True}
    eager = _updated_twice(False, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would compare eager with itself
        compiled = _updated_twice(True, **kwargs)
    for e, c in zip(eager, compiled, strict=True):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6)


def test_a_failed_compile_runs_the_update_eagerly_with_one_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore lines")

        return run

    eager = _updated_twice(False)
    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="compile_losses: torch.compile of the") as caught:
        fallback = _updated_twice(True)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 2, messages  # once per loss, not once per update
    critic_failed = (
        "the critic loss failed (RuntimeError: InvalidCxxCompiler: No working C++ compiler found);"
    )
    assert critic_failed in messages[0]
    assert "the actor loss failed" in messages[1]
    for e, f in zip(eager, fallback, strict=True):
        torch.testing.assert_close(f, e, rtol=0, atol=0)


@pytest.mark.parametrize("rule", ["tanh", "expected"])
def test_bfloat16_matmuls_keep_float32_weights_and_move_them_as_float32_does(rule):
    """bf16 matmuls change each update by rounding only: weights stay float32, and after two
    updates their change differs from float32's by a few percent (twin critics' min can flip), not by a
    wrong step (about 100%)."""
    start = _updated_twice(False, FusedSettings(actor_lr=0, critic_lr=0, tau=0), rule=rule, twin=True)
    float32 = _updated_twice(False, rule=rule, twin=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a CPU without AVX512-BF16 runs it slowly
        bfloat16 = _updated_twice(False, FusedSettings(matmul_dtype="bfloat16"), rule=rule, twin=True)
    assert {p.dtype for p in bfloat16} == {torch.float32}
    moved = torch.cat([(f - s).flatten() for f, s in zip(float32, start, strict=True)])
    moved_bf16 = torch.cat([(b - s).flatten() for b, s in zip(bfloat16, start, strict=True)])
    assert moved.norm() > 0
    relative = ((moved_bf16 - moved).norm() / moved.norm()).item()
    assert 0 < relative < 0.2, relative  # 0: autocast did nothing; a wrong update: about 1


def test_matmul_precision_refuses_other_dtypes_and_warns_once_where_bf16_is_emulated(monkeypatch):
    with pytest.raises(ValueError, match=r"matmul_dtype must be one of float32, bfloat16 \(got 'float16'\)"):
        core.matmul_precision("float16", "cpu")
    x = torch.ones(2, 2)
    with core.matmul_precision("float32", "cpu"):
        assert (x @ x).dtype == torch.float32
    monkeypatch.setattr(core, "bf16_is_native", lambda device_type: False)
    core._warn_slow_bf16.cache_clear()
    with pytest.warns(RuntimeWarning, match="bfloat16 on a cpu without bf16 matmul units") as caught:
        for _ in range(2):
            with core.matmul_precision("bfloat16", "cpu"):
                assert (x @ x).dtype == torch.bfloat16
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    core._warn_slow_bf16.cache_clear()
