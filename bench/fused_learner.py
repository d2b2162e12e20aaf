"""The fused MADDPG update against the per-module learner: updates/s at batch 1024, 1 torch thread
(``--threads`` for more).

For 3 agents (simple_spread), 6 (simple_world_comm) and 12 (simple_spread with N=12), three ways
of running the same update on the same modules:

- ``learner``: RLlib's ``Learner.update`` of the per-module learner (batch conversion included);
- ``learner_step``: that learner's update step alone (``_uncompiled_update``) on ready tensors;
- ``fused``: ``FusedMADDPG.update`` with its batch from ``JointReplayBuffer.sample`` as tensors.

They alternate in rounds, one update each, so that all see the same machine (a shared box
drifts). Per update it records wall time and the thread's CPU time (``time.thread_time``, which
leaves out time spent waiting for a core); the speedups are medians of each round's ratio.

Usage: ``.venv/bin/python bench/fused_learner.py [--rounds 30] [--agents 3 6 12] [--compile]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from throughput import learners

from ray_maddpg.maddpg import MADDPGConfig
from ray_maddpg.maddpg.fused import FusedMADDPG
from ray_maddpg.maddpg.maddpg import joint_train_batch
from ray_maddpg.maddpg.torch.maddpg_torch_learner import NUM_UPDATES

SCENARIOS = {3: ("simple_spread", {}), 6: ("simple_world_comm", {}), 12: ("simple_spread", {"N": 12})}
RESULTS = Path(__file__).parent / "results" / "fused_learner.json"


def updates(scenario: str, env_options: dict, compile_losses: bool = False):
    """The three ways of updating (four with ``compile_losses``), as functions of the update index."""
    config = (
        MADDPGConfig()
        .environment("mpe2", env_config={"scenario": scenario, **env_options})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .debugging(seed=0)
    )
    learner, fused, buffer, layout = learners(config)
    size = config.train_batch_size_per_learner

    def learner_update(n: int) -> None:
        batch = joint_train_batch(buffer.sample(size), layout)
        learner.update(batch=batch, timesteps={NUM_UPDATES: n})

    def learner_step(n: int) -> None:
        batch = joint_train_batch(buffer.sample(size), layout).policy_batches
        learner._uncompiled_update(
            {m: {k: torch.from_numpy(np.asarray(v)) for k, v in b.items()} for m, b in batch.items()}
        )

    def fused_update(n: int) -> None:
        fused.update(buffer.sample(size).to_torch())

    ways = {"learner": learner_update, "learner_step": learner_step, "fused": fused_update}
    if compile_losses:
        compiled = FusedMADDPG(fused.modules, fused.settings, compile_losses=True)
        ways["compiled"] = lambda n: compiled.update(buffer.sample(size).to_torch())
    return len(layout.agents), ways


def measure(num_agents: int, rounds: int, compile_losses: bool = False) -> dict:
    scenario, env_options = SCENARIOS[num_agents]
    n, ways = updates(scenario, env_options, compile_losses)
    times = {name: {"wall": [], "cpu": []} for name in ways}
    for i in range(rounds + 2):
        for name, update in ways.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            update(i)
            if i >= 2:  # two warm-up rounds
                times[name]["wall"].append(time.perf_counter() - wall)
                times[name]["cpu"].append(time.thread_time() - cpu)

    def speedup(base: str, clock: str, way: str = "fused") -> float:
        pairs = zip(times[base][clock], times[way][clock], strict=True)
        return statistics.median(b / f for b, f in pairs)

    compiled = {}
    if "compiled" in ways:
        compiled = {
            "compiled_speedup_vs_fused": {
                "wall": speedup("fused", "wall", "compiled"),
                "cpu": speedup("fused", "cpu", "compiled"),
            }
        }
    return {
        "scenario": scenario,
        "env_options": env_options,
        "num_agents": n,
        "updates_per_s_wall": {k: 1 / statistics.median(v["wall"]) for k, v in times.items()},
        "cpu_ms_per_update": {k: 1e3 * statistics.median(v["cpu"]) for k, v in times.items()},
        "cpu_ms_per_update_min": {k: 1e3 * min(v["cpu"]) for k, v in times.items()},
        "fused_speedup_wall": {
            "vs_learner": speedup("learner", "wall"),
            "vs_learner_step": speedup("learner_step", "wall"),
        },
        "fused_speedup_cpu": {
            "vs_learner": speedup("learner", "cpu"),
            "vs_learner_step": speedup("learner_step", "cpu"),
        },
        **compiled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=30, help="measured updates per way (fewer at 12 agents)"
    )
    parser.add_argument("--agents", type=int, nargs="+", default=[3, 6, 12], choices=sorted(SCENARIOS))
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (CPU ms then counts the calling thread only)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also the fused update with its losses through torch.compile"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default: {RESULTS})")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = [
        measure(n, args.rounds if n < 12 else max(3, args.rounds // 5), args.compile) for n in args.agents
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "torch_threads": args.threads,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    threads = f"{args.threads} thread{'s' * (args.threads > 1)}"
    print(f"fused vs per-module MADDPG update, batch 1024, {threads} (load {load_before[0]:.1f} before)")
    for r in rows:
        wall, cpu = r["updates_per_s_wall"], r["cpu_ms_per_update"]
        print(
            f"  {r['num_agents']:>2} agents ({r['scenario']}): updates/s learner {wall['learner']:.1f}, "
            f"learner step {wall['learner_step']:.1f}, fused {wall['fused']:.1f}; CPU ms/update "
            f"{cpu['learner']:.1f} / {cpu['learner_step']:.1f} / {cpu['fused']:.1f}; fused speedup "
            f"{r['fused_speedup_wall']['vs_learner']:.2f}x wall ({r['fused_speedup_cpu']['vs_learner']:.2f}x CPU) "
            f"vs learner, {r['fused_speedup_cpu']['vs_learner_step']:.2f}x CPU vs its step"
            + (
                f"; compiled {wall['compiled']:.1f} updates/s, "
                f"{r['compiled_speedup_vs_fused']['wall']:.2f}x the fused update"
                if "compiled" in wall
                else ""
            )
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
