"""MADDPG math against hand-computed values on tiny networks with fixed weights."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from ray_maddpg.maddpg import core

torch.set_num_threads(1)


def linear(weights, bias):
    layer = nn.Linear(len(weights), 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
        layer.bias.fill_(bias)
    return layer


def test_critic_target_is_reward_plus_discounted_next_q():
    y = core.critic_target(
        torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]), torch.tensor([False, False]), 0.5
    )
    assert torch.allclose(y, torch.tensor([1.0 + 0.5 * 3.0, 2.0 + 0.5 * 4.0]))


def test_critic_target_bootstraps_on_truncation_but_not_on_termination():
    rewards, next_q = torch.tensor([1.0, 1.0]), torch.tensor([10.0, 10.0])
    terminated = torch.tensor([True, False])  # row 1 is a truncated (time-limit) step: not terminated
    y = core.critic_target(rewards, next_q, terminated, gamma=0.9)
    assert torch.allclose(y, torch.tensor([1.0, 1.0 + 0.9 * 10.0]))


def test_twin_critic_target_uses_the_smaller_q():
    y = core.critic_target(
        torch.zeros(2), [torch.tensor([5.0, 1.0]), torch.tensor([3.0, 2.0])], torch.zeros(2), gamma=1.0
    )
    assert torch.allclose(y, torch.tensor([3.0, 1.0]))


def test_critic_target_carries_no_gradient():
    next_q = torch.tensor([1.0], requires_grad=True)
    assert not core.critic_target(torch.zeros(1), next_q, torch.zeros(1), 0.95).requires_grad


def test_critic_loss_on_a_fixed_linear_centralized_critic_matches_hand_computation():
    critic = linear([1.0, 2.0, 3.0], bias=0.5)
    obs = [torch.tensor([[1.0], [0.0]]), torch.tensor([[2.0], [1.0]])]
    actions = [torch.tensor([[3.0], [-1.0]])]
    q = critic(core.centralized_critic_input(obs, actions)).squeeze(-1)
    # Row 0: 1*1 + 2*2 + 3*3 + 0.5 = 14.5; row 1: 0 + 2*1 + 3*(-1) + 0.5 = -0.5.
    y = torch.tensor([14.0, 1.5])
    assert torch.allclose(q, torch.tensor([14.5, -0.5]))
    assert core.critic_loss(q, y).item() == pytest.approx((0.5**2 + 2.0**2) / 2)


def test_twin_critic_loss_adds_each_critics_squared_error():
    y = torch.tensor([1.0, 1.0])
    loss = core.critic_loss([torch.tensor([2.0, 0.0]), torch.tensor([1.0, 4.0])], y)
    assert loss.item() == pytest.approx(1.0 + (0.0 + 9.0) / 2)


def test_actor_loss_is_negative_mean_q_plus_logit_penalty():
    actor = linear([2.0, -1.0], bias=0.0)
    obs = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
    logits = actor(obs)  # [[1], [6]]
    q = torch.tensor([1.0, 3.0])
    loss = core.actor_loss(q, logits, logit_penalty=1e-3)
    assert loss.item() == pytest.approx(-2.0 + 1e-3 * (1.0 + 36.0) / 2)


def test_actor_loss_without_logits_is_negative_mean_q():
    assert core.actor_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_gradients_flow_through_gumbel_softmax_to_logits():
    logits = torch.zeros(4, 5, requires_grad=True)
    weights = torch.arange(5.0)
    (core.gumbel_softmax(logits) * weights).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_straight_through_gumbel_softmax_is_one_hot_forward_and_differentiable():
    logits = torch.randn(16, 5, requires_grad=True)
    sample = core.gumbel_softmax(logits, hard=True)
    assert torch.equal(sample.sum(-1), torch.ones(16))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    (sample * torch.arange(5.0)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_relaxed_gumbel_softmax_sample_is_a_distribution():
    sample = core.gumbel_softmax(torch.randn(8, 5), temperature=0.5)
    assert torch.all(sample >= 0)
    assert torch.allclose(sample.sum(-1), torch.ones(8))


def test_actor_update_reaches_actor_weights_through_the_centralized_critic():
    torch.manual_seed(0)
    actor, critic = core.MLP(3, 4), core.MLP(3 + 3 + 4 + 4, 1)
    obs = [torch.randn(8, 3), torch.randn(8, 3)]
    logits = actor(obs[0])
    actions = [core.ActionRule("straight_through").policy(logits), torch.eye(4)[torch.randint(4, (8,))]]
    core.actor_loss(critic(core.centralized_critic_input(obs, actions)).squeeze(-1), logits).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())


def test_greedy_discrete_action_is_the_argmax_one_hot():
    action = core.ActionRule("straight_through").greedy(torch.tensor([[0.1, 2.0, -1.0]]))
    assert torch.equal(action, torch.tensor([[0.0, 1.0, 0.0]]))


def test_discrete_exploration_action_is_a_one_hot():
    action = core.ActionRule("straight_through").explore(torch.randn(32, 5))
    assert torch.equal(action.sum(-1), torch.ones(32))


def test_continuous_actions_are_squashed_into_minus_one_to_one():
    raw = torch.tensor([-100.0, -0.5, 0.0, 0.5, 100.0])
    for action in (core.ActionRule("tanh").greedy(raw), core.ActionRule("tanh").policy(raw)):
        assert torch.allclose(action, torch.tanh(raw))


def _is_one_hot(x: torch.Tensor) -> bool:
    return bool(torch.equal(x.sum(-1), torch.ones(x.shape[:-1])) and set(x.unique().tolist()) <= {0.0, 1.0})


def _is_interior_simplex_point(x: torch.Tensor) -> bool:
    return bool(torch.allclose(x.sum(-1), torch.ones(x.shape[:-1])) and (x > 0).all() and (x < 1).all())


def test_straight_through_rule_uses_one_hots_everywhere_and_its_actor_loss_has_gradients():
    rule, logits = core.ActionRule("straight_through"), torch.randn(64, 5, requires_grad=True)
    assert _is_one_hot(rule.explore(logits.detach())) and _is_one_hot(rule.target(logits.detach()))
    policy_action = rule.policy(logits)
    assert _is_one_hot(policy_action.detach())
    (policy_action * torch.arange(5.0)).sum().backward()
    assert logits.grad.abs().sum() > 0
    assert torch.equal(rule.target(logits.detach()), core.onehot_argmax(logits.detach()))


def test_simplex_rule_uses_soft_vectors_everywhere_and_sends_them_to_the_env_unchanged():
    rule, logits = core.ActionRule("simplex", temperature=1.0), torch.randn(64, 5)
    for action in (rule.explore(logits), rule.target(logits), rule.policy(logits), rule.greedy(logits)):
        assert _is_interior_simplex_point(action)
    p = rule.explore(logits)
    env_action = rule.to_env(p)  # MPEMultiAgentEnv maps [-1, 1] to mpe2's [0, 1]: (a + 1) / 2
    torch.testing.assert_close((env_action.clamp(-1, 1) + 1) / 2, p)


def test_mixed_ablation_executes_one_hots_but_trains_on_soft_vectors():
    rule, logits = core.ActionRule("mixed"), torch.randn(64, 5)
    assert _is_one_hot(rule.explore(logits))
    assert _is_interior_simplex_point(rule.target(logits)) and _is_interior_simplex_point(rule.policy(logits))


def test_expected_rule_executes_samples_and_scores_the_exact_expectation_over_own_actions():
    rule = core.ActionRule("expected")
    logits = torch.randn(64, 5, requires_grad=True)
    assert _is_one_hot(rule.explore(logits.detach()))
    assert torch.equal(rule.target(logits.detach()), core.onehot_argmax(logits.detach()))
    q_table = torch.randn(64, 5)  # a critic that is linear in the own one-hot: Q(e_k) = q_table[:, k]
    q_pi = rule.policy_q(logits, lambda action: (action * q_table).sum(-1))
    probs = torch.softmax(logits, -1)
    torch.testing.assert_close(q_pi, (probs * q_table).sum(-1))
    # d/dl_k sum_j pi_j Q_j = pi_k (Q_k - V): no sampling noise in the gradient.
    q_pi.sum().backward()
    value = (probs * q_table).sum(-1, keepdim=True)
    torch.testing.assert_close(logits.grad, (probs * (q_table - value)).detach())


def test_an_unknown_action_rule_is_refused():
    with pytest.raises(ValueError, match="unknown action rule 'soft'"):
        core.ActionRule("soft")


def test_exploration_noise_keeps_continuous_actions_in_range():
    noisy = core.add_exploration_noise(torch.full((1000,), 0.9), std=1.0)
    assert torch.all(noisy.abs() <= 1.0)
    assert noisy.std() > 0.1


def test_a_tanh_rule_explores_with_the_generator_it_is_given():
    rule, out = core.ActionRule("tanh"), torch.zeros(8, 2)

    def draw(seed: int) -> torch.Tensor:
        return rule.explore(out, noise_std=0.3, generator=torch.Generator().manual_seed(seed))

    torch.manual_seed(123)
    first = draw(0)
    torch.manual_seed(456)  # the global generator does not matter
    assert torch.equal(first, draw(0))
    assert not torch.equal(first, draw(1))


def test_target_policy_smoothing_noise_is_clipped():
    smoothed = core.target_policy_smoothing(torch.zeros(10_000), noise_std=10.0, noise_clip=0.2)
    assert smoothed.abs().max().item() == pytest.approx(0.2)


def test_target_policy_smoothing_keeps_actions_in_range():
    smoothed = core.target_policy_smoothing(torch.full((1000,), 0.95), noise_std=1.0, noise_clip=0.5)
    assert smoothed.max().item() == pytest.approx(1.0)


def test_soft_update_is_polyak_averaging_with_tau():
    target, source = nn.Linear(2, 2), nn.Linear(2, 2)
    before = [p.detach().clone() for p in target.parameters()]
    core.soft_update(target, source, tau=0.01)
    for new, old, src in zip(target.parameters(), before, source.parameters(), strict=True):
        assert torch.allclose(new, 0.01 * src + 0.99 * old)


def test_centralized_critic_input_puts_observations_then_actions_in_sorted_agent_order():
    obs = {"b": torch.tensor([[2.0]]), "a": torch.tensor([[1.0]])}
    actions = {"b": torch.tensor([[20.0]]), "a": torch.tensor([[10.0]])}
    assert torch.equal(core.centralized_critic_input(obs, actions), torch.tensor([[1.0, 2.0, 10.0, 20.0]]))


def test_local_critic_input_holds_only_the_agents_own_observation_and_action():
    x = core.local_critic_input(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0]]))
    assert torch.equal(x, torch.tensor([[1.0, 2.0, 3.0]]))


def test_mlp_has_the_papers_two_hidden_layers_of_64_relu_units():
    mlp = core.MLP(10, 5)
    assert [type(m) for m in mlp] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [m.out_features for m in mlp if isinstance(m, nn.Linear)] == [64, 64, 5]


def test_twin_critic_returns_two_q_values_per_row():
    q = core.Critic(6, twin=True)(torch.randn(4, 6))
    assert len(q) == 2 and all(v.shape == (4,) for v in q)


def test_joint_actors_match_each_actors_own_forward_for_homogeneous_agents():
    actors = [core.MLP(18, 5) for _ in range(3)]
    joint = core.JointActors(actors)
    obs = [torch.randn(8, 18) for _ in range(3)]
    assert joint.homogeneous
    for out, actor, o in zip(joint(obs), actors, obs, strict=True):
        assert torch.allclose(out, actor(o), atol=1e-5)


def test_joint_actors_match_each_actors_own_forward_for_heterogeneous_agents():
    actors = [core.MLP(16, 5), core.MLP(16, 5), core.MLP(16, 5), core.MLP(14, 5)]  # simple_tag
    joint = core.JointActors(actors)
    obs = [torch.randn(4, 16), torch.randn(4, 16), torch.randn(4, 16), torch.randn(4, 14)]
    assert not joint.homogeneous
    for out, actor, o in zip(joint(obs), actors, obs, strict=True):
        assert torch.allclose(out, actor(o), atol=1e-5)


def test_joint_actors_stack_actors_of_the_same_shape_into_one_group():
    actors = [core.MLP(16, 5), core.MLP(14, 5), core.MLP(16, 5), core.MLP(16, 5)]
    assert core.JointActors(actors).groups == [[0, 2, 3], [1]]


def test_joint_actors_use_new_weights_after_sync():
    actors = [core.MLP(4, 2) for _ in range(2)]
    joint = core.JointActors(actors)
    with torch.no_grad():
        actors[1][-1].bias.add_(100.0)
    joint.sync()
    obs = [torch.randn(3, 4), torch.randn(3, 4)]
    assert torch.allclose(joint(obs)[1], actors[1](obs[1]), atol=1e-5)


def test_core_and_replay_import_without_ray():
    code = "import sys, ray_maddpg.maddpg.core, ray_maddpg.maddpg.replay; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
