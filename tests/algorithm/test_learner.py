"""The learner: separate actor/critic gradients, Polyak targets, delayed actor updates."""

from __future__ import annotations

import pytest
import torch
from maddpg_helpers import built_learner, joint_batch, small_config

from ray_maddpg.maddpg.maddpg import joint_train_batch, random_replay
from ray_maddpg.maddpg.torch.maddpg_torch_learner import ACTOR, NUM_UPDATES


def _params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _update(learner, batch, num_updates: int = 0):
    return learner.update(
        batch=batch, timesteps={"num_env_steps_sampled_lifetime": 0, NUM_UPDATES: num_updates}
    )


def _changed(before, net) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))


def test_an_update_changes_every_agents_actor_and_critic():
    config = small_config("simple_adversary")
    learner, batch = built_learner(config), joint_batch(config)
    modules = {mid: learner.module[mid].unwrapped() for mid in learner.module.keys()}
    before = {mid: (_params(m.actor), _params(m.critic)) for mid, m in modules.items()}
    results = _update(learner, batch)
    for mid, m in modules.items():
        assert _changed(before[mid][0], m.actor) and _changed(before[mid][1], m.critic), mid
        assert {"actor_loss", "critic_loss", "q_mean"} <= set(results[mid])


def test_targets_follow_polyak_averaging_with_tau():
    config = small_config(tau=0.25)
    learner, batch = built_learner(config), joint_batch(config)
    module = learner.module["agent_1"].unwrapped()
    targets_before = _params(module.target_actor) + _params(module.target_critic)
    _update(learner, batch)
    mains_after = _params(module.actor) + _params(module.critic)
    targets_after = _params(module.target_actor) + _params(module.target_critic)
    for old, main, new in zip(targets_before, mains_after, targets_after, strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * main)


def test_actor_loss_gradients_never_reach_the_critic():
    """The actor step's gradients are the actor's parameters only (the critic it is scored by
    stays as the critic step left it); the by-hand update in test_action_rules checks the values."""
    config = small_config()
    learner = built_learner(config)
    batch = learner._convert_batch_type(joint_batch(config)).policy_batches
    joint = learner._joint_view(batch)
    module = learner.module["agent_0"].unwrapped()
    actor_loss = learner._actor_loss("agent_0", batch["agent_0"], joint)
    grads = learner._gradients({"agent_0": actor_loss}, ACTOR)
    actor_refs = {learner.get_param_ref(p) for p in module.actor.parameters()}
    assert set(grads) == actor_refs
    assert not {learner.get_param_ref(p) for p in module.critic.parameters()} & set(grads)


def test_delayed_actor_update_moves_only_the_critic_between_actor_steps():
    config = small_config(policy_delay=2)
    learner, batch = built_learner(config), joint_batch(config)
    module = learner.module["agent_0"].unwrapped()
    actor, critic, targets = _params(module.actor), _params(module.critic), _params(module.target_critic)
    _update(learner, batch, num_updates=1)  # update 1 of a delay of 2: critics only
    assert not _changed(actor, module.actor)
    assert not _changed(targets, module.target_critic)
    assert _changed(critic, module.critic)
    _update(learner, batch, num_updates=2)
    assert _changed(actor, module.actor) and _changed(targets, module.target_critic)


def test_one_learner_call_runs_one_update_per_minibatch():
    config = small_config(policy_delay=2, tau=0.5)
    learner = built_learner(config)
    module = learner.module["agent_0"].unwrapped()
    two = joint_batch(config, rows=2 * config.train_batch_size_per_learner)
    targets = _params(module.target_actor)
    learner.update(
        batch=two,
        minibatch_size=config.train_batch_size_per_learner,
        num_epochs=1,
        timesteps={"num_env_steps_sampled_lifetime": 0, NUM_UPDATES: 1},
    )
    # Updates 1 and 2: only update 2 moves the actor and the targets, by exactly tau once.
    actor = _params(module.actor)
    for old, main, new in zip(targets, actor, _params(module.target_actor), strict=True):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * main)


def test_matd3_with_continuous_actions_updates():
    config = small_config(
        env_options={"continuous_actions": True}, twin_q=True, target_noise=0.2, policy_delay=2
    )
    learner, batch = built_learner(config), joint_batch(config)
    results = _update(learner, batch, num_updates=0)
    assert torch.isfinite(torch.tensor(float(results["agent_0"]["critic_loss"].peek())))


def _modules(learner):
    return {mid: learner.module[mid].unwrapped() for mid in learner.module.keys()}


@pytest.mark.parametrize(
    ("scenario", "env_options", "training"),
    [
        ("simple_spread", None, {}),
        (
            "simple_spread",
            {"continuous_actions": True},
            {"twin_q": True, "policy_delay": 2, "target_noise": 0.2},
        ),
        ("simple_tag", None, {"share_parameters": {"adversary": True}, "critic": {"agent": "local"}}),
    ],
    ids=["maddpg", "matd3-delay", "shared-team-local-critic"],
)
def test_update_joint_equals_learner_update_on_the_same_replay_sample(scenario, env_options, training):
    """The training path (``update_joint`` on a replay sample) and RLlib's ``Learner.update`` on the
    same sample as a ``MultiAgentBatch``: the same updates, so the same weights, targets and logs."""
    config = small_config(scenario, env_options=env_options, **training)
    size = config.train_batch_size_per_learner
    sample = random_replay(config, 300).sample(3 * size)
    timesteps = {"num_env_steps_sampled_lifetime": 0, NUM_UPDATES: 1}
    learners = []
    for joint in (False, True):
        torch.manual_seed(0)
        learner = built_learner(config)
        torch.manual_seed(1)  # the same exploration and target noise draws
        if joint:
            results = learner.update_joint(sample, minibatch_size=size, timesteps=timesteps)
        else:
            results = learner.update(
                batch=joint_train_batch(sample, config.agent_layout()),
                minibatch_size=size,
                num_epochs=1,
                timesteps=timesteps,
            )
        learners.append((learner, results))
    (per_minibatch, want), (joint, got) = learners
    for mid, module in _modules(per_minibatch).items():
        other = _modules(joint)[mid]
        for name in ("actor", "critic", "target_actor", "target_critic"):
            for a, b in zip(
                getattr(module, name).parameters(), getattr(other, name).parameters(), strict=True
            ):
                torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    for scope, name in (
        ("__all_modules__", "num_env_steps_trained"),
        ("__all_modules__", "num_module_steps_trained"),
        *((mid, name) for mid in _modules(joint) for name in ("critic_loss", "actor_loss", "total_loss")),
    ):
        logged = float(got[scope][name].peek())
        assert logged == pytest.approx(float(want[scope][name].peek()), rel=1e-5), (scope, name)
        assert logged != 0.0, (scope, name)


def test_update_joint_needs_the_fused_update_and_a_whole_minibatch():
    config = small_config(fused_update=False)
    sample = random_replay(config, 200).sample(config.train_batch_size_per_learner)
    timesteps = {"num_env_steps_sampled_lifetime": 0}
    with pytest.raises(ValueError, match="fused update only"):
        built_learner(config).update_joint(sample, minibatch_size=64, timesteps=timesteps)
    with pytest.raises(ValueError, match="no minibatch of 128"):
        built_learner(small_config()).update_joint(sample, minibatch_size=128, timesteps=timesteps)
