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
from typing import Any

import numpy as np

from ray_maddpg.experiment.evaluate import load_checked_policy, run_episodes
from ray_maddpg.experiment.metrics import OCCUPIED_RADIUS, EpisodeMetrics, _touching

ROOT = Path(__file__).resolve().parent.parent
SAVED = ROOT / "bench" / "results" / "reproduce" / "simple_spread.json"
TRANSIT_STEPS = 10


class CollisionSplit(EpisodeMetrics):
    """One episode's collisions (as `collisions` counts them), split as the module says."""

    def __init__(self) -> None:
        self.steps = self.total = self.transit = self.parked = 0
        self.landmarks: np.ndarray | None = None
        self.crowded = False

    def observe(self, world: Any) -> None:
        if self.landmarks is None:  # simple_spread's landmarks never move
            self.landmarks = np.array([lm.state.p_pos for lm in world.landmarks])
            gaps = [np.linalg.norm(a - b) for a, b in itertools.combinations(self.landmarks, 2)]
            self.crowded = min(gaps) < 2 * world.agents[0].size
        self.steps += 1
        positions = np.array([a.state.p_pos for a in world.agents])
        nearest = np.linalg.norm(positions[:, None] - self.landmarks[None], axis=-1).min(1)
        on_landmark = nearest < OCCUPIED_RADIUS
        for i, j in itertools.combinations(range(len(positions)), 2):
            if _touching(world.agents[i], world.agents[j]):
                self.total += 1
                self.transit += self.steps <= TRANSIT_STEPS
                self.parked += bool(on_landmark[i] and on_landmark[j])

    def result(self) -> dict[str, float]:
        return {
            "collisions": self.total,
            "in_transit": self.transit,
            "settled": self.total - self.transit,
            "parked": self.parked,
            "crowded": float(self.crowded),
        }


def rollouts(trial: Path, episodes: int, seed: int) -> dict[str, float]:
    """Per-episode means of the collision split for one checkpoint."""
    policy = load_checked_policy(trial, seed=seed)
    per_episode = run_episodes(policy, episodes, seed, tracker=lambda _: CollisionSplit()).metrics
    means = {k: float(np.mean(v)) for k, v in per_episode.items()}
    collisions, crowded = np.array(per_episode["collisions"]), np.array(per_episode["crowded"], dtype=bool)
    means["in_crowded_episodes"] = float(collisions[crowded].mean()) if crowded.any() else float("nan")
    means["in_other_episodes"] = float(collisions[~crowded].mean()) if (~crowded).any() else float("nan")
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
