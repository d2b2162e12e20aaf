"""MADDPG throughput on simple_spread, every figure measured side by side in one run.

- raw: mpe2 joint env steps/s with random actions, no policy (``step_joint`` of 1 env);
- sampling: ``JointEnvRunner`` with policy inference and exploration, no learning;
- batched sampling: the same with ``env.backend: batched`` at 1 to 4096 envs per runner,
  against a raw rate measured right before; and at the presets' 8 envs with the env step
  eager and compiled (``env.compile``) in alternating rounds;
- learner: full MADDPG updates/s (all agents, batch 1024), per-module learner vs the fused
  update (``maddpg/fused.py``) in alternating rounds: ``fused_learner_speedup``; and, where the
  CPU has bf16 matmul units, the fused update with ``matmul_dtype: bfloat16`` in the same rounds;
- train: end-to-end ``MADDPG.train()`` at the paper's schedule (one update of batch 1024
  per 100 env steps) with remote env runners, after learning has started;
- scaling: the train rate for 1, 2, ... env runners up to the CPU count;
- train on the default ``batched`` backend: simple_spread and simple_world_comm (6 agents);
- paper budget: the wall time of one whole run of ``presets/paper-simple-spread.yaml`` (1.5M
  env steps, seed 0, no evaluation or checkpoints), minutes on a laptop (``--no-paper-budget``
  skips it), and its CPU seconds: the driver (learner), the env runners, Ray's other processes;
  then, where the CPU has bf16 matmul units, the same run with ``matmul_dtype: bfloat16``
  (``--no-bf16`` skips the bf16 figures); then the float32 run with ``env.compile: true``.

``make bench`` runs it; it prints a table and writes ``bench/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import ray
import torch

from ray_maddpg.envs.mpe import MPEMultiAgentEnv
from ray_maddpg.experiment.runner import algorithm_config, connect
from ray_maddpg.experiment.schema import load_experiment
from ray_maddpg.maddpg import MADDPGConfig
from ray_maddpg.maddpg.core import bf16_is_native
from ray_maddpg.maddpg.env_runner import JointEnvRunner
from ray_maddpg.maddpg.fused import FusedMADDPG
from ray_maddpg.maddpg.maddpg import joint_train_batch, random_replay
from ray_maddpg.maddpg.torch.maddpg_torch_learner import NUM_UPDATES

SCENARIO = "simple_spread"
BATCHED_NUM_ENVS = (1, 64, 1024, 4096)
COMPILED_ENV_NUM_ENVS = 8  # the presets' envs per runner
BATCHED_RATIO_AT = 1024  # the envs per runner of ``batched_sampling_ratio_to_raw``
RESULTS = Path(__file__).parent / "results" / "throughput.json"
PAPER_PRESET = Path(__file__).parents[1] / "trainer" / "ray_maddpg" / "presets" / "paper-simple-spread.yaml"


def config(
    num_env_runners: int,
    num_envs: int,
    backend: str = "mpe2",
    scenario: str = SCENARIO,
    compile_env: bool = False,
) -> MADDPGConfig:
    """The paper's settings; learning starts once one batch is stored, so the rate is measured while learning."""
    env_config = {"scenario": scenario, "backend": backend, **({"compile": True} if compile_env else {})}
    return (
        MADDPGConfig()
        .environment("mpe2", env_config=env_config)
        .training(num_steps_sampled_before_learning_starts=2048, replay_buffer_capacity=200_000)
        # 100 steps per env and sample, as the rates since the first bench were measured ("auto"
        # would sample 1 step of 1,024 envs per call).
        .env_runners(
            num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs, rollout_fragment_length=100
        )
        .reporting(min_sample_timesteps_per_iteration=0)
        .debugging(seed=0)
    )


def raw_rate(seconds: float) -> float:
    env = MPEMultiAgentEnv({"scenario": SCENARIO})
    env.reset_joint(seed=0)
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            _, _, terminated, truncated = env.step_joint(rng.integers(0, 5, 3))
            if terminated or truncated:
                env.reset_joint()
        steps += 100
    return steps / (time.perf_counter() - start)


def sampling_rate(seconds: float, runner: JointEnvRunner) -> float:
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += len(runner.sample())
    return steps / (time.perf_counter() - start)


def raw_and_sampling(seconds: float, num_envs: int, rounds: int = 5) -> tuple[float, float, list[float]]:
    """Median raw and sampling rates, measured in alternating rounds so that both see the same
    machine (a shared box drifts); also each round's sampling/raw ratio."""
    runner = JointEnvRunner(config=config(0, num_envs))
    runner.sample()
    raws, samplings = [], []
    for _ in range(rounds):
        raws.append(raw_rate(seconds / rounds))
        samplings.append(sampling_rate(seconds / rounds, runner))
    ratios = [s / r for s, r in zip(samplings, raws, strict=True)]
    return float(np.median(raws)), float(np.median(samplings)), ratios


def batched_sampling(seconds: float) -> dict:
    """Sampling rates with ``env.backend: batched`` per envs-per-runner count, each with its
    ratio to the raw single-env mpe2 rate measured right before them."""
    raw = raw_rate(seconds)
    rows = []
    for num_envs in BATCHED_NUM_ENVS:
        runner = JointEnvRunner(config=config(0, num_envs, backend="batched"))
        runner.sample()
        rate = sampling_rate(seconds, runner)
        rows.append(
            {"num_envs_per_env_runner": num_envs, "sampling_steps_per_s": rate, "ratio_to_raw": rate / raw}
        )
    return {"raw_env_steps_per_s_before": raw, "rows": rows}


def compiled_env_sampling(seconds: float, rounds: int = 5) -> dict:
    """Batched sampling at the presets' 8 envs per runner, the env step eager and through
    ``torch.compile`` (``env.compile``), in alternating rounds."""
    eager, compiled = (
        JointEnvRunner(config=config(0, COMPILED_ENV_NUM_ENVS, backend="batched", compile_env=c))
        for c in (False, True)
    )
    eager.sample(), compiled.sample()  # the compile happens here, outside the rounds
    eager_rates, compiled_rates = [], []
    for _ in range(rounds):
        eager_rates.append(sampling_rate(seconds / rounds, eager))
        compiled_rates.append(sampling_rate(seconds / rounds, compiled))
    speedups = [c / e for c, e in zip(compiled_rates, eager_rates, strict=True)]
    return {
        "num_envs_per_env_runner": COMPILED_ENV_NUM_ENVS,
        "eager_steps_per_s": float(np.median(eager_rates)),
        "compiled_steps_per_s": float(np.median(compiled_rates)),
        "speedup": float(np.median(speedups)),
        "speedup_per_round": speedups,
    }


def learners(cfg: MADDPGConfig) -> tuple:
    """The per-module learner of ``cfg`` (built with ``fused_update: false``, which is not the
    default), a ``FusedMADDPG`` over copies of its modules, a ``random_replay`` of 4096 rows and
    the agents' layout."""
    learner = cfg.copy(copy_frozen=False).training(fused_update=False).build_learner()
    learner.build()
    layout = cfg.agent_layout()
    fused = FusedMADDPG.from_modules({mid: learner.module[mid].unwrapped() for mid in layout.modules}, cfg)
    return learner, fused, random_replay(cfg, 4096), layout


def learner_rates(seconds: float, bf16: bool, updates_per_call: int = 10, rounds: int = 5) -> dict:
    """Updates/s of the per-module learner (``Learner.update``, batch 1024, all agents) and of
    the fused update (``FusedMADDPG`` over the same modules, its batch straight from the buffer as
    tensors), measured in alternating rounds so that both see the same machine (a shared box
    drifts); the speedup is the median of the rounds' ratios. ``bf16``: also the fused update
    with bf16 matmuls (its own copy of the networks), in the same rounds."""
    cfg = config(0, 1)
    learner, fused, buffer, layout = learners(cfg)
    size = cfg.train_batch_size_per_learner
    fused_bf16 = FusedMADDPG.from_modules(
        fused.modules, dataclasses.replace(fused.settings, matmul_dtype="bfloat16")
    )

    def per_module_update(n: int) -> None:
        batch = joint_train_batch(buffer.sample(size * updates_per_call), layout)
        learner.update(batch=batch, minibatch_size=size, num_epochs=1, timesteps={NUM_UPDATES: n})

    def fused_updates(learner: FusedMADDPG):
        def update(n: int) -> None:
            for _ in range(updates_per_call):
                learner.update(buffer.sample(size).to_torch())

        return update

    fused_update, fused_bf16_update = fused_updates(fused), fused_updates(fused_bf16)

    def rate(update, seconds: float) -> float:
        updates, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            update(updates)
            updates += updates_per_call
        return updates / (time.perf_counter() - start)

    per_module_update(0)
    fused_update(0)
    if bf16:
        fused_bf16_update(0)
    per_module, fused_rates, bf16_rates = [], [], []
    for _ in range(rounds):
        per_module.append(rate(per_module_update, seconds / rounds))
        fused_rates.append(rate(fused_update, seconds / rounds))
        if bf16:
            bf16_rates.append(rate(fused_bf16_update, seconds / rounds))
    ratios = [f / p for f, p in zip(fused_rates, per_module, strict=True)]
    bf16_ratios = [b / p for b, p in zip(bf16_rates, per_module, strict=False)]
    return {
        "learner_updates_per_s": float(np.median(per_module)),
        "fused_learner_updates_per_s": float(np.median(fused_rates)),
        "fused_learner_speedup": float(np.median(ratios)),
        "fused_learner_speedup_per_round": ratios,
        "fused_learner_bf16_updates_per_s": float(np.median(bf16_rates)) if bf16 else None,
        "fused_learner_bf16_speedup": float(np.median(bf16_ratios)) if bf16 else None,
        "fused_learner_bf16_speedup_per_round": bf16_ratios,
    }


def train_rate(seconds: float, num_env_runners: int, num_envs: int, **env) -> dict:
    algo = config(num_env_runners, num_envs, **env).build_algo()
    try:
        # Warm up until learning has started and the pipeline is full.
        while algo.train()["num_learner_updates_lifetime"] < 5:
            pass
        steps0, updates0 = algo._env_steps, algo._num_updates
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            result = algo.train()
        elapsed = time.perf_counter() - start
        steps, updates = algo._env_steps - steps0, algo._num_updates - updates0
        return {
            "train_steps_per_s": steps / elapsed,
            "learner_updates_per_s_in_training": updates / elapsed,
            "updates_per_env_step": result["updates_per_env_step"],
        }
    finally:
        algo.stop()


def paper_budget_run(matmul_dtype: str = "float32", compile_env: bool = False) -> dict:
    """One whole paper-budget simple_spread run, as ``ray-maddpg train`` sets it up from the
    preset (its env runners and envs), minus evaluation and checkpoints: its wall seconds and
    where the CPU went (``cpu_used_by_role`` over the run)."""
    overrides = [
        "tune={seeds: null}",
        "evaluation={every_iterations: 0}",
        f"algorithm.matmul_dtype={matmul_dtype}",
        f"env.compile={str(compile_env).lower()}",
    ]
    experiment = load_experiment(PAPER_PRESET, overrides)
    algo = algorithm_config(experiment).build_algo()
    try:
        cpu_before = cpu_by_process()
        start = time.perf_counter()
        last = time.perf_counter()
        while algo._env_steps < experiment.stop["env_steps"]:
            algo.train()
            if time.perf_counter() - last > 60:
                last = time.perf_counter()
                print(
                    f"  paper budget ({matmul_dtype}{', env compiled' if compile_env else ''}): "
                    f"{algo._env_steps:,} env steps after {last - start:.0f} s",
                    flush=True,
                )
        wall = time.perf_counter() - start
        return {"wall_s": wall, "cpu_s": cpu_used_by_role(cpu_before, cpu_by_process())}
    finally:
        algo.stop()


def cpu_by_process(root: int | None = None) -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds so far, user + system) for process ``root`` (default: this one,
    which holds the learner, the replay buffer and the training loop), role ``driver``, and its
    living descendants: the env runner actors (``ray::JointEnvRunner``) as ``env_runners``, every
    other (an embedded Ray's raylet, GCS, dashboard, idle workers) as ``ray_other``. Read from
    ``/proc``; empty where there is none, or no such process."""
    if not Path("/proc/self/stat").exists():
        return {}
    root = os.getpid() if root is None else root
    procs = {}  # pid -> (parent pid, cpu seconds, command line)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        procs[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmdline)
    if root not in procs:
        return {}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found = {root: ("driver", procs[root][1])}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        _, cpu, cmdline = procs[pid]
        found[pid] = ("env_runners" if cmdline.startswith("ray::JointEnvRunner") else "ray_other", cpu)
        todo += children.get(pid, [])
    return found


def cpu_used_by_role(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per role between two ``cpu_by_process`` readings, over the processes alive at
    the second (one that ended in between is lost, as its CPU time is)."""
    used = {"driver": 0.0, "env_runners": 0.0, "ray_other": 0.0} if after else {}
    for pid, (role, cpu) in after.items():
        used[role] += cpu - (before[pid][1] if pid in before else 0.0)
    return used


def runner_counts(cpus: int) -> list[int]:
    """1, 2, 4, ... env runners, up to and including the CPU count."""
    counts = [1]
    while counts[-1] * 2 <= cpus:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == cpus else [*counts, cpus]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per figure")
    parser.add_argument("--num-envs", type=int, default=16, help="envs per env runner")
    parser.add_argument("--no-scaling", action="store_true", help="skip the env runner scaling table")
    parser.add_argument(
        "--no-paper-budget", action="store_true", help="skip the whole paper-budget run (minutes)"
    )
    parser.add_argument(
        "--no-bf16",
        action="store_true",
        help="skip the bf16-matmul figures (run only where the CPU has bf16)",
    )
    args = parser.parse_args()
    bf16 = bf16_is_native("cpu") and not args.no_bf16

    torch.set_num_threads(1)
    cpus = os.cpu_count() or 1
    load_before = os.getloadavg()
    raw, sampling, sampling_ratios = raw_and_sampling(2 * args.seconds, args.num_envs)
    batched = batched_sampling(args.seconds / 2)
    compiled_env = compiled_env_sampling(args.seconds)
    batched_ratio = next(
        r["ratio_to_raw"] for r in batched["rows"] if r["num_envs_per_env_runner"] == BATCHED_RATIO_AT
    )
    learner = learner_rates(2 * args.seconds, bf16)
    connect(None)  # an embedded local Ray, with the CLI's retries on a saturated machine
    try:
        # Each training rate is compared with the raw rate measured right after it.
        train = train_rate(args.seconds * 2, 1, args.num_envs)
        train["raw_after"] = raw_rate(args.seconds / 2)
        scaling = []
        if not args.no_scaling:
            for n in runner_counts(cpus):
                rate = train if n == 1 else train_rate(args.seconds, n, args.num_envs)
                raw_after = rate.get("raw_after") or raw_rate(args.seconds / 2)
                scaling.append(
                    {
                        "num_env_runners": n,
                        "train_steps_per_s": rate["train_steps_per_s"],
                        "raw_env_steps_per_s_after": raw_after,
                        "ratio_train_to_raw": rate["train_steps_per_s"] / raw_after,
                    }
                )
        batched_train = {
            scenario: train_rate(args.seconds, 1, args.num_envs, backend="batched", scenario=scenario)
            for scenario in (SCENARIO, "simple_world_comm")
        }
        paper = None if args.no_paper_budget else paper_budget_run()
        paper_bf16 = paper_budget_run("bfloat16") if paper is not None and bf16 else None
        paper_compiled = None if paper is None else paper_budget_run(compile_env=True)
    finally:
        ray.shutdown()

    results = {
        "scenario": SCENARIO,
        "cpu_count": cpus,
        "cpu_model": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "num_envs_per_env_runner": args.num_envs,
        "raw_env_steps_per_s": raw,
        "sampling_steps_per_s": sampling,
        "train_steps_per_s": train["train_steps_per_s"],
        **learner,
        "learner_updates_per_s_in_training": train["learner_updates_per_s_in_training"],
        "ratio_sampling_to_raw": float(np.median(sampling_ratios)),
        "ratio_sampling_to_raw_per_round": sampling_ratios,
        "batched_sampling": batched,
        "batched_sampling_ratio_to_raw": batched_ratio,
        "compiled_env_sampling": compiled_env,
        "compiled_env_sampling_speedup": compiled_env["speedup"],
        "raw_env_steps_per_s_after_train": train["raw_after"],
        "ratio_train_to_raw": train["train_steps_per_s"] / train["raw_after"],
        "updates_per_env_step": train["updates_per_env_step"],
        "scaling": scaling,
        "batched_train_steps_per_s": batched_train[SCENARIO]["train_steps_per_s"],
        "world_comm_train_steps_per_s": batched_train["simple_world_comm"]["train_steps_per_s"],
        "paper_budget_simple_spread_wall_s": paper and paper["wall_s"],
        "paper_budget_cpu_s": paper and paper["cpu_s"],
        "paper_budget_simple_spread_bf16_wall_s": paper_bf16 and paper_bf16["wall_s"],
        "paper_budget_bf16_cpu_s": paper_bf16 and paper_bf16["cpu_s"],
        "paper_budget_simple_spread_compiled_env_wall_s": paper_compiled and paper_compiled["wall_s"],
        "paper_budget_compiled_env_cpu_s": paper_compiled and paper_compiled["cpu_s"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print(
        f"MADDPG throughput on {SCENARIO} ({cpus} x {results['cpu_model']}, load {load_before[0]:.1f} before)"
    )
    rows = [
        ("raw mpe2 env (random actions)", f"{raw:,.0f} env steps/s", ""),
        (
            "sampling (JointEnvRunner)",
            f"{sampling:,.0f} env steps/s",
            f"{np.median(sampling_ratios):.2f}x raw (rounds: {', '.join(f'{r:.2f}' for r in sampling_ratios)})",
        ),
        *(
            (
                f"batched sampling, {row['num_envs_per_env_runner']} envs",
                f"{row['sampling_steps_per_s']:,.0f} env steps/s",
                f"{row['ratio_to_raw']:.2f}x raw (measured right before)",
            )
            for row in batched["rows"]
        ),
        (
            f"batched sampling, {COMPILED_ENV_NUM_ENVS} envs, env.compile",
            f"{compiled_env['compiled_steps_per_s']:,.0f} env steps/s",
            f"{compiled_env['speedup']:.2f}x eager ({compiled_env['eager_steps_per_s']:,.0f}; rounds: "
            f"{', '.join(f'{r:.2f}' for r in compiled_env['speedup_per_round'])})",
        ),
        ("learner (batch 1024, all agents)", f"{learner['learner_updates_per_s']:,.1f} updates/s", ""),
        (
            "fused learner (the same updates)",
            f"{learner['fused_learner_updates_per_s']:,.1f} updates/s",
            f"{learner['fused_learner_speedup']:.2f}x the learner (rounds: "
            f"{', '.join(f'{r:.2f}' for r in learner['fused_learner_speedup_per_round'])})",
        ),
        *(
            [
                (
                    "fused learner, bf16 matmuls",
                    f"{learner['fused_learner_bf16_updates_per_s']:,.1f} updates/s",
                    f"{learner['fused_learner_bf16_speedup']:.2f}x the learner (rounds: "
                    f"{', '.join(f'{r:.2f}' for r in learner['fused_learner_bf16_speedup_per_round'])})",
                )
            ]
            if bf16
            else []
        ),
        (
            "training, 1 remote env runner",
            f"{train['train_steps_per_s']:,.0f} env steps/s",
            f"{train['train_steps_per_s'] / train['raw_after']:.2f}x raw (measured right after)",
        ),
        ("realised replay ratio", f"{train['updates_per_env_step']:.4f} updates/env step", "configured 0.01"),
        *(
            (
                f"training, batched, {scenario}",
                f"{rate['train_steps_per_s']:,.0f} env steps/s",
                f"{rate['learner_updates_per_s_in_training']:,.1f} updates/s",
            )
            for scenario, rate in batched_train.items()
        ),
    ]
    for label, run in (("", paper), (", bf16 matmuls", paper_bf16), (", env.compile", paper_compiled)):
        if run is None:
            continue
        cpu = run["cpu_s"]
        split = ", ".join(f"{role} {s:,.0f}" for role, s in cpu.items()) if cpu else "not measured here"
        rows.append(
            (
                f"paper budget, simple_spread (1.5M){label}",
                f"{run['wall_s']:,.0f} s",
                f"{run['wall_s'] / 60:.1f} min; CPU-s: {split}",
            )
        )
    for name, value, ratio in rows:
        print(f"  {name:<34} {value:>26}  {ratio}")
    if scaling:
        print("  scaling (training):")
        for row in scaling:
            print(
                f"    {row['num_env_runners']} env runner(s)  {row['train_steps_per_s']:>10,.0f} env steps/s"
                f"  {row['ratio_train_to_raw']:.2f}x raw"
            )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
