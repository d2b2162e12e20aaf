"""mpe2's scenario constructor options and one check for each, shared by the mpe2 wrapper
(``envs/mpe.py``) and the batched envs (``envs/batched``). No Ray or mpe2 imports."""

from __future__ import annotations

from typing import Any

from ray_maddpg.validation import Check, boolean, int_at_least, number_in, optional, positive_int, problem

RENDER_MODES = (None, "rgb_array", "human")


def render_mode(value: Any) -> str | None:
    return None if value in RENDER_MODES else "must be null, 'rgb_array' or 'human'"


OPTION_CHECKS: dict[str, Check] = {
    "N": positive_int,
    "num_good": positive_int,
    "num_adversaries": positive_int,
    "num_obstacles": int_at_least(0),
    "num_food": int_at_least(0),
    "num_forests": int_at_least(0),
    "max_cycles": positive_int,
    "local_ratio": number_in(0, 1),
    "continuous_actions": boolean,
    "dynamic_rescaling": boolean,
    "benchmark_data": boolean,
    "curriculum": boolean,
    "terminate_on_success": boolean,
    "num_agent_neighbors": optional(positive_int),
    "num_landmark_neighbors": optional(positive_int),
    "render_mode": render_mode,
}


def _world_comm_food(value: Any) -> str | None:
    # mpe2's prey reward takes the distance to the nearest food, so it fails without any.
    message = problem(positive_int, value)
    return f"{message} for simple_world_comm (the prey reward needs food)" if message else None


# Where one scenario allows less than the option's general check.
_SCENARIO_CHECKS: dict[tuple[str, str], Check] = {("simple_world_comm", "num_food"): _world_comm_food}


def option_check(scenario: str, name: str) -> Check:
    """The check for option ``name`` of ``scenario`` (unknown options: ``boolean``)."""
    return _SCENARIO_CHECKS.get((scenario, name)) or OPTION_CHECKS.get(name, boolean)
