"""Scenario metrics computed on hand-built mpe2 world states."""

import math

import numpy as np
import pytest
from mpe2._mpe_utils.core import Agent, Landmark, World

from ray_maddpg.experiment.metrics import episode_metrics, summarize


def agent(x, y, *, size=0.15, adversary=False, collide=True):
    a = Agent()
    a.state.p_pos = np.array([x, y], dtype=float)
    a.size, a.adversary, a.collide = size, adversary, collide
    return a


def landmark(x, y, *, size=0.05):
    lm = Landmark()
    lm.state.p_pos = np.array([x, y], dtype=float)
    lm.size = size
    return lm


def world(agents, landmarks):
    w = World()
    w.agents, w.landmarks = agents, landmarks
    return w


def run(scenario, *worlds):
    tracker = episode_metrics(scenario)
    for w in worlds:
        tracker.observe(w)
    return tracker.result()


def test_spread_landmark_distance_is_the_nearest_agent_distance_averaged_over_landmarks_and_steps():
    step1 = world([agent(0, 0), agent(5, 5)], [landmark(1, 0), landmark(5, 7)])  # nearest: 1 and 2
    step2 = world([agent(1, 0), agent(5, 7)], [landmark(1, 0), landmark(5, 7)])  # nearest: 0 and 0
    assert run("simple_spread", step1, step2)["landmark_distance"] == pytest.approx((1.5 + 0.0) / 2)


def test_spread_counts_each_colliding_pair_once_per_step():
    touching = world([agent(0, 0), agent(0.2, 0), agent(3, 3)], [landmark(9, 9)])  # 0.2 < 0.15 + 0.15
    assert run("simple_spread", touching, touching)["collisions"] == 2


def test_spread_ignores_agents_that_are_apart():
    apart = world([agent(0, 0), agent(0.31, 0)], [landmark(9, 9)])
    assert run("simple_spread", apart)["collisions"] == 0


def test_spread_landmarks_occupied_counts_landmarks_with_an_agent_within_radius_at_the_last_step():
    first = world([agent(0, 0), agent(2, 2)], [landmark(0, 0.05), landmark(2, 2.05)])
    last = world([agent(0, 0), agent(2, 2)], [landmark(0, 0.05), landmark(2, 2.5)])
    assert run("simple_spread", first, last)["landmarks_occupied"] == 1


def adversary_world(adversary_at, good_at):
    goal = landmark(0, 0, size=0.08)
    decoy = landmark(1, 1, size=0.08)
    agents = [agent(*adversary_at, adversary=True)] + [agent(*p) for p in good_at]
    for a in agents:
        a.goal_a = goal
    return world(agents, [goal, decoy])


def test_adversary_good_agents_succeed_when_any_good_agent_is_near_the_goal_at_the_end():
    result = run("simple_adversary", adversary_world((2, 2), [(0.1, 0), (1, 1)]))  # 0.1 < 2 * 0.08
    assert result == {"good_success": 1.0, "adversary_success": 0.0, "landmarks_covered": 1.0}


def test_adversary_landmarks_covered_needs_a_good_agent_on_every_landmark_at_the_end():
    split = adversary_world((2, 2), [(0.1, 0), (1, 1.1)])  # goal and decoy each have one
    both_on_goal = adversary_world((2, 2), [(0.1, 0), (0, 0.1)])
    assert run("simple_adversary", split)["landmarks_covered"] == 1.0
    assert run("simple_adversary", both_on_goal)["landmarks_covered"] == 0.0
    assert run("simple_adversary", split, both_on_goal)["landmarks_covered"] == 0.0


def test_adversary_succeeds_when_it_is_near_the_goal_at_the_end():
    near_then_far = [adversary_world((0, 0.1), [(3, 3)]), adversary_world((0, 0.2), [(3, 3)])]
    assert run("simple_adversary", near_then_far[0])["adversary_success"] == 1.0
    assert run("simple_adversary", *near_then_far)["adversary_success"] == 0.0


def test_tag_counts_predator_prey_contacts_summed_over_steps():
    prey = agent(0, 0, size=0.05)
    predators = [agent(0.1, 0, size=0.075, adversary=True), agent(0, 0.1, size=0.075, adversary=True)]
    far = agent(3, 3, size=0.075, adversary=True)
    step = world([*predators, far, prey], [])
    assert run("simple_tag", step, step)["touches"] == 4


def test_tag_does_not_count_predators_touching_each_other():
    step = world([agent(0, 0, adversary=True), agent(0.01, 0, adversary=True), agent(5, 5)], [])
    assert run("simple_tag", step)["touches"] == 0


def speaker_listener_world(listener_at):
    goal, other = landmark(1, 1, size=0.04), landmark(-1, -1, size=0.04)
    speaker, listener = agent(0, 0, size=0.075), agent(*listener_at, size=0.075)
    speaker.goal_a, speaker.goal_b = listener, goal
    return world([speaker, listener], [goal, other])


def test_speaker_listener_reports_final_distance_and_reach_from_the_last_step():
    result = run("simple_speaker_listener", speaker_listener_world((0, 1)), speaker_listener_world((1, 1.1)))
    assert result["final_distance"] == pytest.approx(0.1)
    assert result["target_reached"] == 1.0  # 0.1 < 0.075 + 0.04
    assert result["target_touched"] == 1.0


def test_speaker_listener_touched_counts_any_step_reached_only_the_last():
    result = run(
        "simple_speaker_listener", speaker_listener_world((1, 1.1)), speaker_listener_world((1, 0.5))
    )
    assert result["target_touched"] == 1.0
    assert result["target_reached"] == 0.0


def test_speaker_listener_far_from_goal_has_not_reached_it():
    result = run("simple_speaker_listener", speaker_listener_world((1, 0.5)))
    assert result == {
        "target_reached": 0.0,
        "target_touched": 0.0,
        "final_distance": pytest.approx(0.5),
        "goal_nearest": 1.0,
    }


def test_scenarios_without_benchmark_metrics_report_none():
    assert run("simple_push", world([agent(0, 0)], [landmark(1, 1)])) == {}


def test_summarize_gives_mean_and_population_std():
    assert summarize([1.0, 3.0]) == {"mean": 2.0, "std": 1.0}


def test_speaker_listener_final_distance_is_undefined_before_any_step():
    assert math.isnan(run("simple_speaker_listener")["final_distance"])


def test_speaker_listener_goal_nearest_asks_which_landmark_the_listener_ended_closest_to():
    # Far from both, but nearer the goal (1, 1) than the other landmark (-1, -1): the right one.
    assert run("simple_speaker_listener", speaker_listener_world((0.3, 0.2)))["goal_nearest"] == 1.0
    # Ended nearer the other landmark: the wrong one, whatever it did before.
    result = run(
        "simple_speaker_listener", speaker_listener_world((1, 1)), speaker_listener_world((-0.2, -0.3))
    )
    assert result["goal_nearest"] == 0.0
