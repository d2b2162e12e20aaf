"""The fused update in float32 against bf16 matmuls (``algorithm.matmul_dtype``), for each paper
preset as `make reproduce` trains it: updates at the preset's batch, 1 torch thread.

For each scenario of ``reproduce.STUDY`` (its first variant's critic settings), the preset is
built as the trainer builds it, twice (float32 and bfloat16), from the same modules; both
update from the same batches of a replay buffer filled with random actions, in alternating
rounds so that both see the same machine (a shared box drifts). The speedup is the median of the
rounds' ratios. Only meaningful where the CPU has bf16 matmul units (AVX512-BF16, AMX) or a GPU;
elsewhere torch emulates bf16 and it is slower.

Usage: ``.venv/bin/python bench/matmul_dtype.py [--only simple_tag] [--rounds 6] [--updates 40]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
from reproduce import EXPERIMENTS, STUDY
from throughput import cpu_model, learners

from ray_maddpg.experiment.runner import algorithm_config
from ray_maddpg.experiment.schema import load_experiment
from ray_maddpg.maddpg.core import bf16_is_native
from ray_maddpg.maddpg.fused import FusedMADDPG
from ray_maddpg.memory import keep_freed_memory

RESULTS = Path(__file__).parent / "results" / "matmul_dtype.json"


def fused_pair(scenario: str) -> tuple[FusedMADDPG, FusedMADDPG, list]:
    """The scenario's fused update in float32 and in bf16 over the same modules, and 8 batches."""
    file, variants = STUDY[scenario]
    critic = next(iter(variants.values())).get("critic", "centralized")
    experiment = load_experiment(EXPERIMENTS / file, [f"algorithm.critic={json.dumps(critic)}"])
    cfg = algorithm_config(experiment).debugging(seed=0)
    _, float32, replay, _ = learners(cfg)
    bf16 = FusedMADDPG.from_modules(
        float32.modules, dataclasses.replace(float32.settings, matmul_dtype="bfloat16")
    )
    batches = [replay.sample(cfg.train_batch_size_per_learner).to_torch() for _ in range(8)]
    return float32, bf16, batches


def measure(scenario: str, rounds: int, updates: int) -> dict:
    float32, bf16, batches = fused_pair(scenario)

    def ms_per_update(learner: FusedMADDPG) -> float:
        start = time.perf_counter()
        for i in range(updates):
            learner.update(batches[i % len(batches)])
        return (time.perf_counter() - start) / updates * 1e3

    ms_per_update(float32), ms_per_update(bf16)  # warm-up
    pairs = [(ms_per_update(float32), ms_per_update(bf16)) for _ in range(rounds)]
    return {
        "float32_ms": [round(a, 2) for a, _ in pairs],
        "bfloat16_ms": [round(b, 2) for _, b in pairs],
        "bf16_speedup": round(statistics.median(a / b for a, b in pairs), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(STUDY), help="scenarios (default: all)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per scenario")
    parser.add_argument("--updates", type=int, default=40, help="updates per round and dtype")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.rounds < 1 or args.updates < 1:
        parser.error("--rounds and --updates must be at least 1")
    keep_freed_memory()
    torch.set_num_threads(1)
    if not bf16_is_native("cpu"):
        print("matmul_dtype: this CPU has no bf16 matmul units; torch emulates bf16 (slower)", flush=True)
    results = {}
    for scenario in args.only or list(STUDY):
        results[scenario] = measure(scenario, args.rounds, args.updates)
        r = results[scenario]
        print(
            f"{scenario}: float32 {statistics.median(r['float32_ms']):.2f} ms, bf16 "
            f"{statistics.median(r['bfloat16_ms']):.2f} ms per update; bf16 {r['bf16_speedup']:.2f}x",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cpu_model": cpu_model(), "bf16_native": bf16_is_native("cpu"), "scenarios": results}
    args.out.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
