"""The benchmark scripts' own logic: runner counts, the speaker's code, and the reproduction's
tables and claims."""

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import reproduce  # noqa: E402
from device_study import Observations, listener_landmarks, parse_args, speaker_code  # noqa: E402
from throughput import config, cpu_by_process, cpu_used_by_role, learners, runner_counts  # noqa: E402

from ray_maddpg.envs.batched import make_batched_env  # noqa: E402


@pytest.mark.parametrize(
    ("cpus", "counts"), [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (8, [1, 2, 4, 8]), (12, [1, 2, 4, 8, 12])]
)
def test_scaling_goes_by_powers_of_two_up_to_the_cpu_count(cpus, counts):
    assert runner_counts(cpus) == counts


def trial(seed: int, metrics: dict, teams: dict | None = None, ret: float = -50.0) -> dict:
    mean = lambda v: {"mean": v, "std": 0.0}  # noqa: E731
    return {
        "seed": seed,
        "env_steps": 1000.0,
        "steps_per_s": 500.0,
        "trial_time_s": 120.0,
        "experiment_wall_s": 125.0,
        "evaluation": {
            "return": mean(ret),
            "teams": {k: mean(v) for k, v in (teams or {}).items()},
            "metrics": {k: mean(v) for k, v in metrics.items()},
        },
        "curve": {"env_steps": [0.0, 1000.0], "return": [ret, ret]},
    }


def spread(distance: float, collisions: float) -> list[dict]:
    metrics = {"landmark_distance": distance, "collisions": collisions, "landmarks_occupied": 1.0}
    return [trial(0, metrics), trial(1, metrics)]


def test_the_learner_bench_compares_the_fused_update_with_the_per_module_one():
    # fused_update is the default, so the baseline must turn it off (from 2026-11-30 to 2026-12-02
    # it did not, and the bench compared the fused update with itself through RLlib).
    learner, fused, _, _ = learners(config(0, 1))
    assert learner._fused is None
    assert fused.agents == ["agent_0", "agent_1", "agent_2"]


BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\ntime.sleep(60)"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_paper_budget_cpu_split_counts_this_process_and_its_descendants_by_role():
    # Two children that each burn CPU, one named as Ray names an env runner actor, one not;
    # a process that is not a descendant must not count.
    runner = f"exec -a ray::JointEnvRunner {sys.executable} -c '{BURN.format(s=0.4)}'"
    children = [
        subprocess.Popen(["bash", "-c", runner]),
        subprocess.Popen([sys.executable, "-c", BURN.format(s=0.2)]),
    ]
    try:
        before = cpu_by_process()
        start = time.process_time()
        while time.process_time() - start < 0.3:
            pass
        assert 0.25 <= cpu_used_by_role(before, cpu_by_process())["driver"] < 1.0
        deadline = time.monotonic() + 30  # a loaded machine gives the children their CPU late
        while time.monotonic() < deadline:
            used = cpu_used_by_role(before, cpu_by_process())
            if used["env_runners"] >= 0.35 and used["ray_other"] >= 0.15:
                break
            time.sleep(0.2)
        assert used["env_runners"] >= 0.35 and used["ray_other"] >= 0.15
        assert {role for role, _ in cpu_by_process(root=children[1].pid).values()} == {"driver"}
        assert cpu_by_process(root=2**22 + 1) == {}  # no such process
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_speaker_code_counts_goals_with_their_own_message_and_what_a_message_tells():
    goals = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
    perfect = speaker_code(goals, (goals + 1) % 3, 3)
    assert perfect == {"code_distinct": 3.0, "goal_from_message": 1.0}
    constant = speaker_code(goals, torch.zeros_like(goals), 3)
    assert constant == {"code_distinct": 1.0, "goal_from_message": 4 / 8}  # goal 0's share
    merged = speaker_code(goals, torch.tensor([0, 1, 1, 0, 1, 1, 0, 0]), 3)  # goals 1 and 2 share one
    assert merged == {"code_distinct": 2.0, "goal_from_message": 6 / 8}


def test_listener_landmarks_tells_the_wrong_landmark_from_stopping_short():
    landmarks = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]]).expand(4, 3, 2)
    goal = torch.tensor([0, 1, 2, 0])
    # On goal 0; short of goal 1 by 0.3; on landmark 0 while the goal is 2; halfway, nearer 0.
    position = torch.tensor([[0.0, 0.0], [0.7, 0.0], [0.0, 0.0], [0.0, 0.4]])
    found = listener_landmarks(position, landmarks, goal)
    assert found["goal_nearest"] == pytest.approx(0.75)
    assert found["nearest_distance"] == pytest.approx((0.0 + 0.3 + 0.0 + 0.4) / 4)
    # Each miss against the direction from its goal to the other two landmarks' centroid: none
    # (cosine 0), (-1, 0) against (-1, 0.5), (0, -1) against (0.5, -1), (0, 1) against (1, 1).
    cosines = [0.0, 2 / math.sqrt(5), 2 / math.sqrt(5), math.cos(math.pi / 4)]
    assert found["toward_others"] == pytest.approx(sum(cosines) / 4, abs=1e-6)


def test_oracle_listener_sees_the_goal_colour_where_the_message_was():
    env = make_batched_env("simple_speaker_listener", 4, seed=0)
    obs = env.reset()
    speaker, listener = env.agents.index("speaker_0"), env.agents.index("listener_0")
    told = Observations(env, oracle=True)(obs)
    assert torch.equal(told[speaker], obs[speaker])
    assert torch.equal(told[listener][:, -3:], obs[speaker])
    assert torch.equal(told[listener][:, :-3], obs[listener][:, :-3])
    assert Observations(env, oracle=False)(obs) is obs


def test_device_study_refuses_a_rule_that_does_not_fit_the_action_space(capsys):
    assert parse_args(["--continuous", "--rule", "simplex"]).rule == "simplex"
    for argv, message in (
        (["--rule", "simplex"], "--rule simplex needs --continuous"),
        (["--continuous", "--rule", "expected"], "--continuous takes --rule simplex or tanh"),
    ):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert message in capsys.readouterr().err


def test_spread_claim_holds_only_when_maddpg_is_no_worse_on_both():
    better = {"simple_spread": {"MADDPG": spread(0.4, 1.0), "DDPG": spread(0.5, 1.5)}}
    worse = {"simple_spread": {"MADDPG": spread(0.4, 2.0), "DDPG": spread(0.5, 1.5)}}
    assert reproduce.claims(better)[0][2] == "yes"
    assert reproduce.claims(worse)[0][2] == "no"


def test_speaker_listener_claim_needs_maddpg_to_reach_and_ddpg_not():
    def sl(rate):
        return [trial(0, {"target_reached": rate, "final_distance": 0.1})]

    assert reproduce.claims({"simple_speaker_listener": {"MADDPG": sl(0.8), "DDPG": sl(0.2)}})[0][2] == "yes"
    assert reproduce.claims({"simple_speaker_listener": {"MADDPG": sl(0.8), "DDPG": sl(0.6)}})[0][2] == "no"


def test_report_has_a_row_per_variant_with_the_mean_over_seeds():
    seed0 = {"landmark_distance": 0.2, "collisions": 1.0, "landmarks_occupied": 1.0}
    seed1 = {"landmark_distance": 0.4, "collisions": 3.0, "landmarks_occupied": 2.0}
    results = {"simple_spread": {"MADDPG": [trial(0, seed0), trial(1, seed1)]}}
    table = reproduce.report(results)
    (row,) = [line for line in table.splitlines() if line.startswith("| MADDPG")]
    assert "| 0,1 | 1,000 |" in row
    assert "0.300 ± 0.100" in row and "2.000 ± 1.000" in row


@pytest.mark.parametrize("ablation", [False, True])
def test_the_summary_links_each_plot_where_the_plot_is_written(tmp_path, monkeypatch, ablation):
    out = tmp_path / "bench" / "results" / "reproduce"
    plots = out if ablation else tmp_path / "docs" / "img"  # --out puts both in one folder
    monkeypatch.setattr(reproduce, "OUT", out)
    monkeypatch.setattr(reproduce, "PLOTS", plots)
    metrics = {"landmark_distance": 0.2, "collisions": 1.0, "landmarks_occupied": 1.0}
    table = reproduce.report({"simple_spread": {"MADDPG": [trial(0, metrics)]}})
    (link,) = [line for line in table.splitlines() if line.startswith("![simple_spread](")]
    target = (out / link.removeprefix("![simple_spread](").removesuffix(")")).resolve()
    assert target == (plots / "reproduce-simple_spread.png").resolve()


def test_a_trial_saved_later_replaces_its_own_seed_and_keeps_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "OUT", tmp_path)
    metrics = {"landmark_distance": 0.5, "collisions": 1.0, "landmarks_occupied": 1.0}
    for seed in (1, 0):
        reproduce.save_trial("simple_spread", "DDPG", trial(seed, metrics))
    reproduce.save_trial("simple_spread", "MADDPG", trial(2, metrics))
    rerun = trial(1, {**metrics, "collisions": 0.25})
    reproduce.save_trial("simple_spread", "DDPG", rerun)
    saved = json.loads((tmp_path / "simple_spread.json").read_text())["variants"]
    assert list(saved) == ["MADDPG", "DDPG"]  # the study's order, whatever order trials end in
    assert [t["seed"] for t in saved["DDPG"]] == [0, 1]
    assert saved["DDPG"][1]["evaluation"]["metrics"]["collisions"]["mean"] == 0.25


def test_trials_saved_at_once_by_two_runs_all_land(tmp_path, monkeypatch):
    # Two `reproduce.py` runs may share a scenario's JSON (a run resumed in parts side by side);
    # each save is a read-modify-write, so without the lock one run's trial can vanish.
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(reproduce, "OUT", tmp_path)
    metrics = {"landmark_distance": 0.5, "collisions": 1.0, "landmarks_occupied": 1.0}
    seeds = range(120)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda s: reproduce.save_trial("simple_spread", "DDPG", trial(s, metrics)), seeds))
    saved = json.loads((tmp_path / "simple_spread.json").read_text())["variants"]
    assert [t["seed"] for t in saved["DDPG"]] == list(seeds)
    assert not list(tmp_path.glob("*.partial"))


def resumed_tasks(monkeypatch, argv: list[str]) -> list[tuple[str, str, int]]:
    """The trials `reproduce.py --resume ...` would train (training and plotting replaced)."""
    ran = []
    monkeypatch.setattr(reproduce, "run_trials", lambda tasks, args: ran.extend(tasks) or [])
    monkeypatch.setattr(reproduce, "plot", lambda scenario, variants: "(plot)")
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "--resume", *argv])
    reproduce.main()
    return ran


@pytest.mark.parametrize(
    "dtype_then, tree_now, rerun",
    [
        ("float32", "tree-a", [1]),  # seed 0 kept: same settings and trainer
        ("bfloat16", "tree-a", [0, 1]),  # other matmuls: trained again
        ("float32", "tree-b", [0, 1]),  # the trainer changed since
        ("float32", None, [0, 1]),  # uncommitted trainer changes: nothing reused
    ],
)
def test_resume_keeps_only_trials_saved_with_the_same_settings_and_trainer(
    tmp_path, monkeypatch, dtype_then, tree_now, rerun
):
    monkeypatch.setattr(reproduce, "OUT", tmp_path)
    argv = ["--only", "simple_spread", "--variants", "MADDPG", "--seeds", "0", "1", "--jobs", "1"]
    then = argparse.Namespace(steps=None, envs=8, matmul_dtype=dtype_then, compile_env=True, set=[])
    saved = trial(0, {"landmark_distance": 0.3, "collisions": 1.0, "landmarks_occupied": 1.0})
    saved["resume_key"] = reproduce.resume_key(("simple_spread", "MADDPG", 0), then, "tree-a")
    reproduce.save_trial("simple_spread", "MADDPG", saved)
    monkeypatch.setattr(reproduce, "trainer_tree", lambda: tree_now)
    ran = resumed_tasks(monkeypatch, [*argv, "--matmul-dtype", "float32"])
    assert ran == [("simple_spread", "MADDPG", seed) for seed in rerun]


def test_the_trainer_tree_is_unknown_while_trainer_has_uncommitted_changes(tmp_path, monkeypatch):
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "algo.py").write_text("lr = 1e-3\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "trainer")
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    committed = reproduce.trainer_tree()
    assert committed and len(committed) == 40
    (tmp_path / "trainer" / "algo.py").write_text("lr = 1e-2\n")
    assert reproduce.trainer_tree() is None


def test_an_unknown_variant_is_refused_with_the_names_allowed(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "--only", "simple_tag", "--variants", "MADDPG"])
    with pytest.raises(SystemExit):
        reproduce.main()
    message = capsys.readouterr().err
    assert "--variants: unknown 'MADDPG'" in message
    assert "'maddpg-predators-vs-ddpg-prey'" in message and "'ddpg-predators-vs-maddpg-prey'" in message


def test_reproduce_says_how_long_the_rest_takes_at_the_pace_so_far():
    assert reproduce.time_left([420.0, 480.0], remaining=7, jobs=2) == "; about 26m15s left"
    assert reproduce.time_left([600.0], remaining=20, jobs=2) == "; about 1h40m left"
    assert reproduce.time_left([300.0], remaining=1, jobs=2) == "; about 5m00s left"  # one trial: one job
    assert reproduce.time_left([20.0], remaining=2, jobs=2) == "; about 20s left"
    assert reproduce.time_left([], remaining=5, jobs=2) == ""
    assert reproduce.time_left([300.0], remaining=0, jobs=2) == ""


@pytest.mark.parametrize(
    ("choice", "native", "expected"),
    [
        ("auto", True, "bfloat16"),
        ("auto", False, "float32"),  # emulated bf16 would be slower
        ("bfloat16", False, "bfloat16"),
        ("float32", True, "float32"),
    ],
)
def test_reproduce_runs_bf16_matmuls_by_default_only_where_the_cpu_has_them(choice, native, expected):
    args = reproduce.argparse.Namespace(matmul_dtype=choice, bf16_native=native)
    assert reproduce.matmul_dtype(args) == expected


def test_reproduce_refuses_a_trial_without_envs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "--envs", "0"])
    with pytest.raises(SystemExit):
        reproduce.main()
    assert "--envs must be at least 1 (got 0)" in capsys.readouterr().err


def test_the_matmul_dtype_bench_compares_one_preset_in_both_dtypes(tmp_path, monkeypatch):
    import matmul_dtype

    float32, bf16, batches = matmul_dtype.fused_pair("simple_adversary")
    assert (float32.settings.matmul_dtype, bf16.settings.matmul_dtype) == ("float32", "bfloat16")
    assert float32.agents == bf16.agents == ["adversary_0", "agent_0", "agent_1"]
    assert len(batches) == 8 and batches[0].rewards.shape[0] == 1024  # the preset's batch
    out = tmp_path / "matmul_dtype.json"
    monkeypatch.setattr(
        sys,
        "argv",
        ["matmul_dtype.py", "--only", "simple_spread", "--rounds", "1", "--updates", "1", "--out", str(out)],
    )
    matmul_dtype.main()
    saved = json.loads(out.read_text())["scenarios"]["simple_spread"]
    assert len(saved["float32_ms"]) == len(saved["bfloat16_ms"]) == 1 and saved["bf16_speedup"] > 0
