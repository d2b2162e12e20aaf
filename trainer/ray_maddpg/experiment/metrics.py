"""Scenario benchmark metrics, computed from the mpe2 world state as in the MADDPG paper.

Each tracker sees the world after every env step (``observe``) and returns one episode's
metrics (``result``). Definitions (paper, appendix / openai/maddpg ``benchmark_data``):

- simple_spread: ``landmark_distance`` is the distance from each landmark to its nearest
  agent, averaged over landmarks and steps; ``collisions`` counts colliding agent pairs,
  summed over steps (a pair touching for 3 steps counts 3); ``landmarks_occupied`` is how
  many landmarks have an agent within 0.1 at the last step.
- simple_adversary: a side succeeds when, at the last step, it is within ``2 * goal.size``
  of the goal landmark (mpe2's own success radius for this scenario): ``good_success`` if
  any good agent is, ``adversary_success`` if the adversary is. ``landmarks_covered`` is 1 when
  every landmark (goal and decoys) has a good agent within that radius at the last step: the
  paper's deception, where the good agents split so the adversary cannot tell the goal.
- simple_tag: ``touches`` counts (predator, prey) pairs in contact, summed over steps.
- simple: ``final_distance`` is the agent-landmark distance at the last step;
  ``on_landmark`` is 1 when that is below 0.1 (the issue's test of single-agent navigation).
- simple_speaker_listener: ``target_reached`` when the listener overlaps the goal landmark
  (distance < listener.size + landmark.size) at the last step; ``final_distance`` is the
  listener-goal distance at the last step; ``target_touched`` when it overlaps at any step (the
  paper's "target reach %" may be either; both are reported). ``goal_nearest`` is 1 when, of
  all landmarks, the goal is the listener's nearest at the last step: it went to the landmark
  the message named (a listener that ignores the message gets about 1/3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# simple_spread's occupancy radius (mpe2 ``benchmark_data`` and ``CAPTURE_RADIUS``).
OCCUPIED_RADIUS = 0.1


def _distance(a: Any, b: Any) -> float:
    return float(np.linalg.norm(np.asarray(a.state.p_pos) - np.asarray(b.state.p_pos)))


def _touching(a: Any, b: Any) -> bool:
    return _distance(a, b) < a.size + b.size


class EpisodeMetrics:
    """Metrics of one episode; scenarios without benchmark metrics report none."""

    def observe(self, world: Any) -> None:
        """Called once after every env step."""

    def result(self) -> dict[str, float]:
        return {}


class SpreadMetrics(EpisodeMetrics):
    def __init__(self) -> None:
        self.distance_sum = 0.0
        self.steps = 0
        self.collisions = 0
        self.occupied = 0

    def observe(self, world: Any) -> None:
        nearest = [min(_distance(agent, lm) for agent in world.agents) for lm in world.landmarks]
        self.distance_sum += float(np.mean(nearest))
        self.steps += 1
        self.collisions += sum(
            1
            for i, a in enumerate(world.agents)
            for b in world.agents[i + 1 :]
            if a.collide and b.collide and _touching(a, b)
        )
        self.occupied = sum(d < OCCUPIED_RADIUS for d in nearest)

    def result(self) -> dict[str, float]:
        return {
            "landmark_distance": self.distance_sum / max(self.steps, 1),
            "collisions": float(self.collisions),
            "landmarks_occupied": float(self.occupied),
        }


class AdversaryMetrics(EpisodeMetrics):
    def __init__(self) -> None:
        self.good_success = False
        self.adversary_success = False
        self.landmarks_covered = False

    def observe(self, world: Any) -> None:
        def near_goal(agent: Any) -> bool:
            return _distance(agent, agent.goal_a) < 2 * agent.goal_a.size

        good = [a for a in world.agents if not a.adversary]
        self.good_success = any(near_goal(a) for a in good)
        self.adversary_success = any(near_goal(a) for a in world.agents if a.adversary)
        self.landmarks_covered = all(
            any(_distance(a, lm) < 2 * lm.size for a in good) for lm in world.landmarks
        )

    def result(self) -> dict[str, float]:
        return {
            "good_success": float(self.good_success),
            "adversary_success": float(self.adversary_success),
            "landmarks_covered": float(self.landmarks_covered),
        }


class TagMetrics(EpisodeMetrics):
    def __init__(self) -> None:
        self.touches = 0

    def observe(self, world: Any) -> None:
        predators = [a for a in world.agents if a.adversary]
        prey = [a for a in world.agents if not a.adversary]
        self.touches += sum(_touching(p, q) for p in predators for q in prey)

    def result(self) -> dict[str, float]:
        return {"touches": float(self.touches)}


class SimpleMetrics(EpisodeMetrics):
    def __init__(self) -> None:
        self.final_distance = math.nan

    def observe(self, world: Any) -> None:
        self.final_distance = _distance(world.agents[0], world.landmarks[0])

    def result(self) -> dict[str, float]:
        on_landmark = self.final_distance < OCCUPIED_RADIUS
        return {"final_distance": self.final_distance, "on_landmark": float(on_landmark)}


class SpeakerListenerMetrics(EpisodeMetrics):
    def __init__(self) -> None:
        self.final_distance = math.nan
        self.reached = False
        self.touched = False
        self.goal_nearest = False

    def observe(self, world: Any) -> None:
        speaker = world.agents[0]
        listener, goal = speaker.goal_a, speaker.goal_b
        self.final_distance = _distance(listener, goal)
        self.reached = self.final_distance < listener.size + goal.size
        self.touched |= self.reached
        self.goal_nearest = min(world.landmarks, key=lambda landmark: _distance(listener, landmark)) is goal

    def result(self) -> dict[str, float]:
        return {
            "target_reached": float(self.reached),
            "target_touched": float(self.touched),
            "final_distance": self.final_distance,
            "goal_nearest": float(self.goal_nearest),
        }


TRACKERS: dict[str, type[EpisodeMetrics]] = {
    "simple": SimpleMetrics,
    "simple_spread": SpreadMetrics,
    "simple_adversary": AdversaryMetrics,
    "simple_tag": TagMetrics,
    "simple_speaker_listener": SpeakerListenerMetrics,
}


def episode_metrics(scenario: str) -> EpisodeMetrics:
    """A fresh tracker for one episode of ``scenario``."""
    return TRACKERS.get(scenario, EpisodeMetrics)()


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and (population) std of per-episode values."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std())}
