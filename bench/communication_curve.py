"""The CI communication test's run (``tests/learning/test_learning.py``, ``communication_config``)
with the greedy policy evaluated after every iteration (51,200 env steps): how soon and how
reliably the listener learns to go where the speaker's message says, and what a change of
settings does to it. Each (critic, seed) trains in its own process, ``--jobs`` at a time, one
torch thread each; every line is printed as it comes and the table at the end.

    .venv/bin/python bench/communication_curve.py --seeds 0 1 2
    .venv/bin/python bench/communication_curve.py --critics centralized --seeds 2 \\
        --set actor_lr=0.001 --steps 300000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_MODULE = ROOT / "tests" / "learning" / "test_learning.py"
SHOWN = ("goal_nearest", "final_distance", "target_reached", "return_mean")


def learning_tests():
    """The learning test module (tests/ is no package), for its ``communication_config``."""
    spec = importlib.util.spec_from_file_location("learning_tests", TEST_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the module registers itself with Ray's pickler by name
    spec.loader.exec_module(module)
    return module


def parse_value(text: str):
    """``--set`` values are JSON where they parse (numbers, lists, booleans), else strings."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def curve(critic: str, seed: int, steps: int, overrides: dict) -> list[dict]:
    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    tests = learning_tests()
    algo = tests.communication_config(critic, seed, **overrides).build_algo()
    points, start = [], time.perf_counter()
    try:
        while True:
            sampled = algo.train()["env_runners"]["num_env_steps_sampled_lifetime"]
            point = {"env_steps": int(sampled), "seconds": round(time.perf_counter() - start, 1)}
            point.update(tests.greedy_metrics(algo))
            points.append(point)
            shown = ", ".join(f"{k} {point[k]:.2f}" for k in SHOWN)
            print(f"{critic} seed {seed} @ {point['env_steps']:,}: {shown}", flush=True)
            if sampled >= steps:
                return points
    finally:
        algo.stop()
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--critics", nargs="+", default=["centralized", "local"], choices=["centralized", "local"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=250_000, help="env steps per run (the test's: 250,000)")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="training settings to override, e.g. actor_lr=0.001",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--out", type=Path, help="write every curve here as JSON")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set takes KEY=VALUE (got {item!r})")
        overrides[key] = parse_value(value)
    runs = [(critic, seed) for critic in args.critics for seed in args.seeds]
    results = {}
    # spawn: each run gets a fresh interpreter, so its own embedded Ray.
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(curve, c, s, args.steps, overrides): (c, s) for c, s in runs}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
    print(f"\nsettings overridden: {overrides or 'none'}")
    print("| critic | seed | env steps | " + " | ".join(SHOWN) + " |")
    print("|---|---|---|" + "---|" * len(SHOWN))
    for critic, seed in runs:
        last = results[(critic, seed)][-1]
        print(
            f"| {critic} | {seed} | {last['env_steps']:,} | "
            + " | ".join(f"{last[k]:.2f}" for k in SHOWN)
            + " |"
        )
    if args.out:
        payload = {
            "overrides": overrides,
            "runs": [{"critic": c, "seed": s, "curve": results[(c, s)]} for c, s in runs],
        }
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
