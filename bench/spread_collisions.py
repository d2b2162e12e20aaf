"""Where cooperative navigation's collisions happen: the simple_spread checkpoints that
`bench/reproduce.py` saved, rolled out greedily on mpe2 with the evaluation's seeds.

The paper's claim is that MADDPG agents collide no more than DDPG agents. This splits each
variant's collisions (colliding pairs, summed over steps, as in `ray-maddpg evaluate`) by
when and where they happen:

- in transit (steps 1-10) or settled (steps 11-25);
- with both agents of the pair within 0.1 of a landmark each ("parked"): agents that sit on
  landmarks lying closer than two agent sizes (0.3) touch whatever they do;
- in episodes whose closest pair of landmarks is nearer than 0.3 ("crowded") or not.

    .venv/bin/python bench/spread_collisions.py            # every saved variant and seed
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from ray_maddpg.envs.mpe import make_env
from ray_maddpg.experiment.evaluate import load_checked_policy
from ray_maddpg.experiment.metrics import OCCUPIED_RADIUS, _touching

ROOT = Path(__file__).resolve().parent.parent
SAVED = ROOT / "bench" / "results" / "reproduce" / "simple_spread.json"
TRANSIT_STEPS = 10


def rollouts(trial: Path, episodes: int, seed: int) -> dict[str, float]:
    """Per-episode means of the collision split for one checkpoint."""
    policy = load_checked_policy(trial, seed=seed)
    config = {k: v for k, v in policy.env_config.items() if k not in ("backend", "scenario")}
    env = make_env("simple_spread", **config)
    counts = {"collisions": [], "in_transit": [], "settled": [], "parked": [], "crowded": []}
    crowded_collisions, other_collisions = [], []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            world = env.world
            landmarks = np.array([lm.state.p_pos for lm in world.landmarks])
            gaps = [np.linalg.norm(a - b) for a, b in itertools.combinations(landmarks, 2)]
            agent_size = world.agents[0].size
            crowded = min(gaps) < 2 * agent_size
            total = transit = parked = 0
            step, done = 0, False
            while not done:
                obs, _, terminated, truncated, _ = env.step(policy.act(obs))
                step += 1
                positions = np.array([a.state.p_pos for a in world.agents])
                on_landmark = (
                    np.linalg.norm(positions[:, None] - landmarks[None], axis=-1).min(1) < OCCUPIED_RADIUS
                )
                for i, j in itertools.combinations(range(len(positions)), 2):
                    if _touching(world.agents[i], world.agents[j]):  # as `collisions` counts it
                        total += 1
                        transit += step <= TRANSIT_STEPS
                        parked += bool(on_landmark[i] and on_landmark[j])
                done = terminated.get("__all__", False) or truncated.get("__all__", False)
            counts["collisions"].append(total)
            counts["in_transit"].append(transit)
            counts["settled"].append(total - transit)
            counts["parked"].append(parked)
            counts["crowded"].append(float(crowded))
            (crowded_collisions if crowded else other_collisions).append(total)
    finally:
        env.close()
    means = {k: float(np.mean(v)) for k, v in counts.items()}
    means["in_crowded_episodes"] = float(np.mean(crowded_collisions)) if crowded_collisions else float("nan")
    means["in_other_episodes"] = float(np.mean(other_collisions)) if other_collisions else float("nan")
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=10_000, help="first episode seed (reproduce.py's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "spread_collisions.json")
    args = parser.parse_args()
    if not SAVED.exists():
        raise SystemExit(f"spread_collisions: no {SAVED.relative_to(ROOT)}; run `make reproduce` first")
    variants = json.loads(SAVED.read_text())["variants"]
    results: dict[str, dict] = {}
    for variant, trials in variants.items():
        per_seed = {}
        for t in trials:
            trial = ROOT / t["trial_dir"]
            if not trial.exists():
                print(f"skip {variant} seed {t['seed']}: {trial} is gone")
                continue
            per_seed[t["seed"]] = rollouts(trial, args.episodes, args.seed)
            print(
                f"{variant} seed {t['seed']}: "
                + ", ".join(f"{k} {v:.2f}" for k, v in per_seed[t["seed"]].items())
            )
        if per_seed:
            keys = next(iter(per_seed.values()))
            mean = {k: float(np.nanmean([s[k] for s in per_seed.values()])) for k in keys}
            results[variant] = {"seeds": per_seed, "mean": mean}
    args.out.write_text(
        json.dumps({"episodes": args.episodes, "seed": args.seed, "variants": results}, indent=1) + "\n"
    )
    print(
        f"\n| variant | collisions | in transit (steps 1-{TRANSIT_STEPS}) | settled | both parked | crowded episodes | in crowded | in others |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for variant, r in results.items():
        m = r["mean"]
        print(
            f"| {variant} | {m['collisions']:.2f} | {m['in_transit']:.2f} | {m['settled']:.2f} | {m['parked']:.2f} "
            f"| {m['crowded']:.0%} | {m['in_crowded_episodes']:.2f} | {m['in_other_episodes']:.2f} |"
        )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
