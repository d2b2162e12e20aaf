"""Cross-play of the competitive reproductions: every team's MADDPG and DDPG policies against
both of the other team's, from the checkpoints that `bench/reproduce.py` saved.

In simple_tag and simple_adversary the paper trains one team with MADDPG and the other with
DDPG, in both match-ups, and compares the two games. Each game then has its own opponents, so
a weak prey and a weak predator look alike. Cross-play holds the opponent fixed: for each seed
it loads both match-ups' checkpoints and plays all four pairings (the two trained ones and the
two crossed ones) on the evaluation's 100 greedy episodes (seeds 10,000-10,099).

    .venv/bin/python bench/cross_play.py                     # both scenarios, every saved seed
    .venv/bin/python bench/cross_play.py --only simple_tag
    .venv/bin/python bench/cross_play.py --only simple_tag --saved bench/results/ablations/tag-expected \
        --out bench/results/ablations/tag-expected/cross_play.json     # an ablation's checkpoints
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reproduce import EVAL_EPISODES, EVAL_SEED, OUT, ROOT, STUDY  # noqa: E402

from ray_maddpg.experiment.evaluate import load_checked_policy, run_episodes  # noqa: E402
from ray_maddpg.maddpg.layout import team_of  # noqa: E402

# What each scenario's table shows: (evaluation metric, what it means).
METRICS = {
    "simple_tag": [("touches", "touches per episode")],
    "simple_adversary": [
        ("good_success", "good agents' success"),
        ("adversary_success", "adversary's success"),
        ("landmarks_covered", "both landmarks covered by good agents"),
    ],
}


# Each team's return (what its learner maximises), mean over its agents: also tabled.
TEAM_RETURNS = [("team/adversary", "adversary team's return"), ("team/agent", "agent team's return")]


class TeamsPolicy:
    """One joint policy made of each team's actors from a different checkpoint."""

    def __init__(self, by_team: dict[str, Any]):
        self.by_team = by_team
        first = next(iter(by_team.values()))
        self.env_config = first.env_config
        self.agent_ids = first.agent_ids

    def act(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        actions = {}
        for team, policy in self.by_team.items():
            actions |= policy.act({a: o for a, o in obs.items() if team_of(a) == team})
        return actions


def learner_of(overrides: dict, team: str) -> str:
    return "MADDPG" if overrides["critic"][team] == "centralized" else "DDPG"


def cross_play(scenario: str, saved_dir: Path = OUT) -> dict[str, Any]:
    """{seed: {"<adversary learner> adversary vs <agent learner> agents": metrics}}, from the
    reproduction saved in ``saved_dir``."""
    variants = STUDY[scenario][1]
    saved = json.loads((saved_dir / f"{scenario}.json").read_text())["variants"]
    seeds = sorted(set.intersection(*({t["seed"] for t in saved[v]} for v in variants)))
    results: dict[str, Any] = {}
    for seed in seeds:
        # team -> learner -> that team's policy (from the match-up where it used that learner)
        policies: dict[str, dict[str, Any]] = {"adversary": {}, "agent": {}}
        for variant, overrides in variants.items():
            (trial,) = [t for t in saved[variant] if t["seed"] == seed]
            policy = load_checked_policy(ROOT / trial["trial_dir"])
            for team in policies:
                policies[team][learner_of(overrides, team)] = policy
        results[seed] = {}
        for adversary, agent in itertools.product(("MADDPG", "DDPG"), repeat=2):
            joint = TeamsPolicy(
                {"adversary": policies["adversary"][adversary], "agent": policies["agent"][agent]}
            )
            summary = run_episodes(joint, EVAL_EPISODES, EVAL_SEED).summary()
            key = f"{adversary} adversary vs {agent} agents"
            results[seed][key] = {m: summary["metrics"][m]["mean"] for m, _ in METRICS[scenario]}
            results[seed][key] |= {f"team/{t}": v["mean"] for t, v in summary["teams"].items()}
            print(f"{scenario} seed {seed}: {key}: {results[seed][key]}", flush=True)
    return results


def table(scenario: str, results: dict[str, Any]) -> str:
    """Rows: the adversary team's learner; columns: the agent team's; cells: mean over seeds."""
    lines = []
    for metric, title in METRICS[scenario] + TEAM_RETURNS:
        lines += [f"{scenario}, {title} (mean over seeds {', '.join(map(str, results))}):", ""]
        lines += ["| adversary team \\ agent team | MADDPG agents | DDPG agents |", "|---|---|---|"]
        for adversary in ("MADDPG", "DDPG"):
            cells = [
                np.mean([r[f"{adversary} adversary vs {agent} agents"][metric] for r in results.values()])
                for agent in ("MADDPG", "DDPG")
            ]
            lines.append(f"| {adversary} adversary | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    competitive = ["simple_tag", "simple_adversary"]
    parser.add_argument("--only", nargs="+", choices=competitive, default=competitive)
    parser.add_argument(
        "--saved", type=Path, default=OUT, help="where the reproduction's JSON is (reproduce.py's --out)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cross_play.json")
    args = parser.parse_args()
    missing = [s for s in args.only if not (args.saved / f"{s}.json").exists()]
    if missing:
        parser.error(
            f"no saved reproduction for {', '.join(missing)} in {args.saved}; run `make reproduce` first"
        )
    everything = {scenario: cross_play(scenario, args.saved) for scenario in args.only}
    args.out.write_text(json.dumps(everything, indent=1) + "\n")
    for scenario, results in everything.items():
        print("\n" + table(scenario, results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
