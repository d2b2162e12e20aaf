"""Progress lines: throughput, ETA to the stop condition, compact formatting."""

import io
import math
from types import SimpleNamespace

from ray_maddpg.experiment.progress import ProgressPrinter, eta_seconds, format_duration, format_progress


def result(steps, elapsed, iteration, mean_return=-50.0):
    return {
        "training_iteration": iteration,
        "time_total_s": elapsed,
        "env_runners": {"num_env_steps_sampled_lifetime": steps, "episode_return_mean": mean_return},
    }


def test_eta_to_an_env_step_budget_follows_the_average_pace():
    assert eta_seconds({"env_steps": 10_000}, result(2_500, 10.0, 5)) == 30.0


def test_eta_takes_the_stop_condition_that_is_met_first():
    stop = {"env_steps": 10_000, "time_total_s": 20.0}
    assert eta_seconds(stop, result(2_500, 10.0, 5)) == 10.0


def test_eta_to_an_iteration_budget_follows_the_time_per_iteration():
    assert eta_seconds({"training_iteration": 10}, result(100, 8.0, 4)) == 12.0


def test_eta_is_unknown_when_only_a_return_threshold_stops_the_run():
    assert math.isnan(eta_seconds({"episode_return_mean": -10.0}, result(100, 8.0, 4)))


def test_durations_are_compact():
    assert [format_duration(s) for s in (7, 125, 3_720, math.nan)] == ["7s", "2m05s", "1h02m", "?"]


def test_progress_line_shows_trial_iteration_steps_return_rate_and_eta():
    line = format_progress("quick_00000", {"env_steps": 10_000}, result(2_500, 10.0, 5, -41.5), 250.0)
    assert line == "[quick_00000] iter    5 | steps      2,500 | return    -41.50 |     250 steps/s | ETA 30s"


def test_progress_line_reads_flat_result_keys_too():
    flat = {"training_iteration": 1, "time_total_s": 1.0, "env_runners/num_env_steps_sampled_lifetime": 800}
    assert "steps        800" in format_progress("t", {"env_steps": 1600}, flat, 800.0)


def test_printer_reports_throughput_between_consecutive_results():
    out = io.StringIO()
    printer = ProgressPrinter({"env_steps": 10_000}, stream=out)
    trial = SimpleNamespace(trial_id="a", __str__=lambda self: "a")
    printer.on_trial_result(0, [], trial, result(1_000, 10.0, 1))
    printer.on_trial_result(0, [], trial, result(3_000, 12.0, 2))
    assert "1,000 steps/s" in out.getvalue().splitlines()[1]
