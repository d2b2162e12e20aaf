"""Prove the MADDPG learner trains on CUDA, and time its updates against the CPU.

Builds the RLlib learner of ``MADDPGConfig`` (3 agents, simple_spread sizes) on each device,
feeds it one joint batch of real simple_spread transitions (random actions), and times
``learner.update`` (critic and actor of every agent, target updates). A device's leg passes
when its modules sit on that device, every update's losses are finite and the weights moved.

    python image/gpu_check.py [--batch 1024] [--updates 100] [--json out.json]

Without a CUDA device it times the CPU leg and says it skipped CUDA (exit 0); with one, the
exit code is 1 unless the CUDA leg passes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

SCENARIO = "simple_spread"


def maddpg_config(batch: int, device: str):
    from ray_maddpg.maddpg import MADDPGConfig

    return (
        MADDPGConfig()
        .environment("mpe2", env_config={"scenario": SCENARIO, "max_cycles": 25})
        .training(train_batch_size_per_learner=batch)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .learners(num_learners=0, num_gpus_per_learner=1 if device == "cuda" else 0)
        .debugging(seed=0)
    )


def joint_batch(config, rows: int):
    """``rows`` joint transitions of real env steps, one batch per agent module."""
    from ray_maddpg.maddpg.maddpg import random_train_batch

    return random_train_batch(config, rows, rows), len(config.agent_layout().agents)


def losses_of(results) -> list[float]:
    """Every loss value an update reported, from RLlib's (possibly nested) results dict."""
    found = []
    stack = [results]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict | list):
                    stack.append(value)
                elif "loss" in str(key):
                    found.append(float(value.peek() if hasattr(value, "peek") else value))
        elif isinstance(node, list):
            stack.extend(node)
    return found


def run_leg(device: str, batch: int, updates: int, warmup: int) -> dict:
    config = maddpg_config(batch, device)
    train_batch, num_agents = joint_batch(config, batch)
    learner = config.build_learner()
    learner.build()
    modules = [learner.module[mid] for mid in learner.module.keys()]
    devices = {p.device.type for m in modules for p in m.parameters()}
    before = [p.detach().clone() for m in modules for p in m.parameters()]

    def update() -> list[float]:
        results = learner.update(
            batch=train_batch, minibatch_size=batch, num_epochs=1, shuffle_batch_per_epoch=False
        )
        return losses_of(results)

    for _ in range(warmup):
        update()
    if device == "cuda":
        torch.cuda.synchronize()
    losses = []
    start = time.perf_counter()
    for _ in range(updates):
        losses += update()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    after = [p.detach() for m in modules for p in m.parameters()]
    moved = sum(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(0)
        if device == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "module_devices": sorted(devices),
        "agents": num_agents,
        "batch": batch,
        "updates": updates,
        "seconds": seconds,
        "updates_per_s": updates / seconds,
        "losses_reported": len(losses),
        "losses_finite": bool(losses) and all(math.isfinite(v) for v in losses),
        "parameters_moved": f"{moved}/{len(after)}",
        "ok": devices == {device} and bool(losses) and all(math.isfinite(v) for v in losses) and moved > 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=1024, help="transitions per update (the paper's 1024)")
    parser.add_argument("--updates", type=int, default=100, help="timed updates per device")
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed updates first (CUDA kernels, allocator)"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    legs = [run_leg("cpu", args.batch, args.updates, args.warmup)]
    if torch.cuda.is_available():
        legs.append(run_leg("cuda", args.batch, args.updates, args.warmup))
    else:
        print("cuda: skipped, no CUDA device here (torch.cuda.is_available() is False)")
    for leg in legs:
        print(
            f"{leg['device']}: {leg['updates_per_s']:.1f} updates/s ({leg['device_name']}; {SCENARIO}, "
            f"{leg['agents']} agents, batch {leg['batch']}, {leg['updates']} updates); modules on "
            f"{','.join(leg['module_devices'])}, losses finite: {leg['losses_finite']}, "
            f"parameters moved: {leg['parameters_moved']} -> {'OK' if leg['ok'] else 'FAILED'}"
        )
    if len(legs) == 2:
        print(f"cuda/cpu speedup: {legs[1]['updates_per_s'] / legs[0]['updates_per_s']:.2f}x")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "legs": legs}, out, indent=2
            )
    return 0 if all(leg["ok"] for leg in legs) else 1


if __name__ == "__main__":
    sys.exit(main())
