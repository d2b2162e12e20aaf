"""Reproduce the MADDPG paper's comparisons on mpe2, and write summaries, tables and plots.

Each (scenario, variant, seed) is one `ray-maddpg train` of the scenario's paper experiment
file with the variant's critic settings; `--jobs` of them run side by side, each on its own
embedded Ray. As each trial ends, its final checkpoint is evaluated greedily and, as
openai/maddpg's benchmark runs do, with the actions sampled as in training (`ray-maddpg
evaluate [--sampled]`'s code, fixed seeds), its learning curve is read from progress.csv, and
it is saved at once. The script writes:

- bench/results/reproduce/<scenario>.json: per variant and seed, the evaluation summary,
  wall time, steps/s, commit and the learning curve. A new trial replaces the saved one of
  the same variant and seed and keeps the others, so a scenario can be run in parts;
- docs/img/reproduce-<scenario>.png: mean and spread (min..max) over seeds of the curves;
- bench/results/reproduce/summary.md: the tables and the paper's claims, checked.

Long: the paper's budget is 1.5M env steps per trial, 27 trials in all. `--steps` shortens
every run.

    .venv/bin/python bench/reproduce.py                       # everything, paper budget
    .venv/bin/python bench/reproduce.py --steps 300000 --only simple_spread
    .venv/bin/python bench/reproduce.py --only simple_tag --seeds 2   # add a seed
    .venv/bin/python bench/reproduce.py --resume              # go on after a run cut short
    .venv/bin/python bench/reproduce.py --report-only         # redo tables/plots from saved JSON
    .venv/bin/python bench/reproduce.py --reevaluate          # evaluate saved checkpoints again
    .venv/bin/python bench/reproduce.py --only simple_tag --out bench/results/ablations/tag-expected \
        --results-dir results/ablations/tag-expected \
        --set env.continuous_actions=false algorithm.action_relaxation=expected   # an ablation
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "trainer" / "ray_maddpg" / "presets"
OUT = ROOT / "bench" / "results" / "reproduce"
PLOTS = ROOT / "docs" / "img"
STEPS = "env_runners/num_env_steps_sampled_lifetime"
RETURN = "env_runners/episode_return_mean"
TEAM_RETURN = "env_runners/team_episode_returns_mean/"
EVAL_EPISODES = 100
EVAL_SEED = 10_000  # evaluation episodes never reuse a training seed's resets

MATD3 = {"twin_q": True, "policy_delay": 2}
# scenario -> (paper experiment file, {variant: algorithm overrides}). In the competitive
# scenarios, as in the paper, one team learns with MADDPG and the other with DDPG.
STUDY: dict[str, tuple[str, dict[str, dict]]] = {
    "simple_spread": (
        "paper-simple-spread.yaml",
        {"MADDPG": {}, "DDPG": {"critic": "local"}, "MATD3": MATD3},
    ),
    "simple_speaker_listener": (
        "paper-simple-speaker-listener.yaml",
        {"MADDPG": {}, "DDPG": {"critic": "local"}},
    ),
    "simple_adversary": (
        "paper-simple-adversary.yaml",
        {
            "MADDPG agents vs DDPG adversary": {"critic": {"agent": "centralized", "adversary": "local"}},
            "DDPG agents vs MADDPG adversary": {"critic": {"agent": "local", "adversary": "centralized"}},
        },
    ),
    "simple_tag": (
        "paper-simple-tag.yaml",
        {
            "MADDPG predators vs DDPG prey": {"critic": {"adversary": "centralized", "agent": "local"}},
            "DDPG predators vs MADDPG prey": {"critic": {"adversary": "local", "agent": "centralized"}},
        },
    ),
}


def matmul_dtype(args: argparse.Namespace) -> str:
    """Every trial's ``algorithm.matmul_dtype``: ``--matmul-dtype``, or for auto bfloat16 where
    the CPU has bf16 matmul units (a trial ran 1.12x faster with simple_spread's return within
    seed noise, and speaker-listener learned the same over 3 seeds: docs/results.md), else
    float32 (emulated bf16 is slower than float32)."""
    if args.matmul_dtype != "auto":
        return args.matmul_dtype
    return "bfloat16" if args.bf16_native else "float32"


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def trial_settings(scenario: str, variant: str, seed: int, args: argparse.Namespace) -> dict:
    """The `--set`s of one trial's `ray-maddpg train`, before an ablation's own (`--set`)."""
    _, variants = STUDY[scenario]
    sets = {
        "name": f"repro-{slug(scenario)}-{slug(variant)}-seed{seed}",
        "tune.seeds": [seed],
        "tune.max_concurrent_trials": 1,
        # One CPU per trial (sampling in the trial's process), so `--jobs` trials run side by side.
        "resources.num_env_runners": 0,
        "resources.num_envs_per_env_runner": args.envs,
        "algorithm.matmul_dtype": matmul_dtype(args),
        "env.compile": args.compile_env,
        "evaluation.every_iterations": 0,
        "checkpoint.every_iterations": 100,
        **{f"algorithm.{k}": v for k, v in variants[variant].items()},
    }
    if args.steps:
        sets["stop.env_steps"] = args.steps
    return sets


def trainer_tree() -> str | None:
    """The git tree of trainer/ (code and presets) at HEAD, or None where it has uncommitted
    changes or git cannot tell: what `--resume` compares, so a trial is reused only if the
    trainer it ran is the one this run would run."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD:trainer"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "trainer"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:  # no git here
        return None
    if head.returncode or dirty.returncode or dirty.stdout.strip():
        return None
    return head.stdout.strip()


def resume_key(task: tuple[str, str, int], args: argparse.Namespace, tree: str | None) -> dict | None:
    """What a saved trial must match for `--resume` to keep it: its settings, the ablation's
    `--set`s and the trainer tree (None, never matched, where the tree is unknown)."""
    return {"sets": trial_settings(*task, args), "ablation": args.set, "trainer_tree": tree} if tree else None


def already_saved(task: tuple[str, str, int], args: argparse.Namespace, tree: str | None) -> bool:
    scenario, variant, seed = task
    path = OUT / f"{scenario}.json"
    wanted = resume_key(task, args, tree)
    if wanted is None or not path.exists():
        return False
    saved = json.loads(path.read_text())["variants"].get(variant, [])
    return any(t["seed"] == seed and t.get("resume_key") == wanted for t in saved)


def train(scenario: str, variant: str, seed: int, args: argparse.Namespace) -> tuple[Path, float]:
    """One `ray-maddpg train` of one seed of the variant; returns its trial dir and wall time.
    With `--jobs` above 1 its output goes to a log beside the run, since trials overlap."""
    file, _ = STUDY[scenario]
    sets = trial_settings(scenario, variant, seed, args)
    name = sets["name"]
    command = [str(Path(sys.executable).parent / "ray-maddpg"), "train", "--config", str(EXPERIMENTS / file)]
    command += [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    command += [a for setting in args.set for a in ("--set", setting)]  # an ablation's, last
    command += ["--results-dir", str(args.results_dir)]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    log = args.results_dir / f"{name}.log"
    print(f"start  {scenario} / {variant} / seed {seed}\n  $ {shlex.join(command)}", flush=True)
    if args.jobs > 1:
        print(f"  log: {log}", flush=True)
    start = time.perf_counter()
    if args.jobs > 1:
        with log.open("w") as out:
            done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    else:
        done = subprocess.run(command, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        where = f"; its output is in {log}" if args.jobs > 1 else ""
        raise RuntimeError(
            f"`ray-maddpg train` for {scenario} / {variant} / seed {seed} exited {done.returncode}{where}"
        )
    run_dir = sorted(args.results_dir.glob(f"{name}_*/"))[-1]
    (trial,) = [p for p in run_dir.iterdir() if (p / "progress.csv").exists()]
    return trial, wall


def read_curve(progress: Path) -> tuple[dict[str, list[float]], float]:
    """The learning curves in a trial's progress.csv, and the trial's total training time."""
    with progress.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get(RETURN) not in (None, "")]
    curve = {"env_steps": [float(r[STEPS]) for r in rows], "return": [float(r[RETURN]) for r in rows]}
    for key in rows[0] if rows else []:
        if key.startswith(TEAM_RETURN):
            curve[f"team/{key.removeprefix(TEAM_RETURN)}"] = [float(r[key] or "nan") for r in rows]
    return curve, float(rows[-1]["time_total_s"]) if rows else 0.0


def evaluations(trial: Path) -> dict[str, dict]:
    """The trial's newest checkpoint evaluated greedily and with sampled actions."""
    from ray_maddpg.experiment.evaluate import load_checked_policy, run_episodes

    return {
        key: run_episodes(
            load_checked_policy(trial, sampled=sampled, seed=EVAL_SEED), EVAL_EPISODES, EVAL_SEED
        ).summary()
        for key, sampled in (("evaluation", False), ("evaluation_sampled", True))
    }


def reevaluate(scenario: str) -> None:
    """Evaluate a saved scenario's trials again (their checkpoints must still be there)."""
    path = OUT / f"{scenario}.json"
    meta = json.loads(path.read_text())
    for variant, trials in meta["variants"].items():
        for t in trials:
            t.update(evaluations(ROOT / t["trial_dir"]))
            print(f"{scenario} / {variant} seed {t['seed']}: evaluated again", flush=True)
    path.write_text(json.dumps(meta, indent=1) + "\n")


def summarize_trial(trial: Path, wall: float, commit: str, resume_key: dict | None = None) -> dict:
    params = json.loads((trial / "params.json").read_text())
    seed = params["seed"]
    curve, seconds = read_curve(trial / "progress.csv")
    return {
        "seed": seed,
        "trial_dir": str(trial.relative_to(ROOT) if trial.is_relative_to(ROOT) else trial),
        "env_steps": curve["env_steps"][-1],
        "trial_time_s": seconds,
        "steps_per_s": curve["env_steps"][-1] / seconds,
        "experiment_wall_s": wall,
        "git_commit": commit,  # the checkout the trial started from
        "resume_key": resume_key,  # what `--resume` compares (None: never reused)
        "matmul_dtype": params.get("matmul_dtype", "float32"),
        "num_envs": params.get("num_envs_per_env_runner"),
        "env_compile": bool(params.get("env_config", {}).get("compile", False)),
        **evaluations(trial),
        "curve": {k: v[:: max(1, len(v) // 200)] for k, v in curve.items()},
    }


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def mean_metric(trials: list[dict], key: str) -> tuple[float, float]:
    """Mean and std over seeds of an evaluation figure: 'return', 'team/<t>' or a metric name,
    of the greedy evaluation, or with a 'sampled/' prefix of the sampled one."""
    values = []
    which = "evaluation_sampled" if key.startswith("sampled/") else "evaluation"
    key = key.removeprefix("sampled/")
    for t in trials:
        if which not in t:  # saved before sampled evaluations existed
            values.append(math.nan)
            continue
        e = t[which]
        if key == "return":
            values.append(e["return"]["mean"])
        elif key.startswith("team/"):
            values.append(e["teams"][key.removeprefix("team/")]["mean"])
        else:  # a metric added after the run was saved reads as NaN
            values.append(e["metrics"].get(key, {"mean": math.nan})["mean"])
    return float(np.mean(values)), float(np.std(values))


def plot(scenario: str, variants: dict[str, list[dict]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if scenario in ("simple_spread", "simple_speaker_listener"):
        keys = ["return"]
    else:  # competitive: one panel per team
        keys = sorted(
            {k for trials in variants.values() for k in trials[0]["curve"] if k.startswith("team/")}
        )
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for variant, trials in variants.items():
            end = min(t["curve"]["env_steps"][-1] for t in trials)
            grid = np.linspace(0, end, 100)
            ys = np.array([np.interp(grid, t["curve"]["env_steps"], t["curve"][key]) for t in trials])
            (line,) = ax.plot(grid, ys.mean(0), label=f"{variant} ({len(trials)} seeds)")
            ax.fill_between(grid, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
        ax.set_title(f"{scenario}: {'episode return (all agents)' if key == 'return' else key + ' return'}")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / f"reproduce-{scenario}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# What each table shows per scenario: (column title, evaluation key).
COLUMNS = {
    "simple_spread": [
        ("return", "return"),
        ("landmark distance", "landmark_distance"),
        ("collisions / episode", "collisions"),
        ("landmarks occupied", "landmarks_occupied"),
    ],
    "simple_speaker_listener": [
        ("return", "return"),
        ("target reached", "target_reached"),
        ("target touched", "target_touched"),
        ("final distance", "final_distance"),
        ("target reached, sampled", "sampled/target_reached"),
        ("final distance, sampled", "sampled/final_distance"),
    ],
    "simple_adversary": [
        ("good success", "good_success"),
        ("adversary success", "adversary_success"),
        ("landmarks covered", "landmarks_covered"),
        ("agent team return", "team/agent"),
        ("adversary return", "team/adversary"),
    ],
    "simple_tag": [("touches / episode", "touches"), ("predator team return", "team/adversary")],
}


def claims(results: dict[str, dict[str, list[dict]]]) -> list[tuple[str, str, str]]:
    """The paper's claims that these results can check: (claim, what we measured, holds?)."""
    rows = []

    def m(scenario: str, variant: str, key: str) -> float:
        return mean_metric(results[scenario][variant], key)[0]

    if {"MADDPG", "DDPG"} <= set(results.get("simple_spread", {})):
        d = (
            m("simple_spread", "MADDPG", "landmark_distance"),
            m("simple_spread", "DDPG", "landmark_distance"),
        )
        c = (m("simple_spread", "MADDPG", "collisions"), m("simple_spread", "DDPG", "collisions"))
        rows.append(
            (
                "cooperative navigation: MADDPG <= DDPG on distance and on collisions",
                f"distance {d[0]:.3f} vs {d[1]:.3f}; collisions {c[0]:.2f} vs {c[1]:.2f}",
                "yes" if d[0] <= d[1] and c[0] <= c[1] else "no",
            )
        )
    if {"MADDPG", "DDPG"} <= set(results.get("simple_speaker_listener", {})):
        r = (
            m("simple_speaker_listener", "MADDPG", "target_reached"),
            m("simple_speaker_listener", "DDPG", "target_reached"),
        )
        rows.append(
            (
                "cooperative communication: MADDPG reaches the target, DDPG does not",
                f"target reached {r[0]:.0%} (MADDPG) vs {r[1]:.0%} (DDPG)",
                "yes" if r[0] >= 0.5 > r[1] else "no",
            )
        )
    adversary = results.get("simple_adversary", {})
    if len(adversary) == 2:
        a, b = adversary
        good = (m("simple_adversary", a, "good_success"), m("simple_adversary", b, "good_success"))
        adv = (m("simple_adversary", a, "adversary_success"), m("simple_adversary", b, "adversary_success"))
        rows.append(
            (
                "physical deception: the MADDPG team wins more often than the DDPG team it faces",
                f"{a}: good {good[0]:.0%}, adversary {adv[0]:.0%}; {b}: good {good[1]:.0%}, adversary {adv[1]:.0%}",
                "yes" if good[0] > good[1] and adv[1] > adv[0] else "no",
            )
        )
    tag = results.get("simple_tag", {})
    if len(tag) == 2:
        a, b = tag
        touches = (m("simple_tag", a, "touches"), m("simple_tag", b, "touches"))
        rows.append(
            (
                "predator-prey: MADDPG predators touch DDPG prey more than DDPG predators touch MADDPG prey",
                f"touches {touches[0]:.2f} ({a}) vs {touches[1]:.2f} ({b})",
                "yes" if touches[0] > touches[1] else "no",
            )
        )
    return rows


def report(results: dict[str, dict[str, list[dict]]]) -> str:
    lines = []
    for scenario, variants in results.items():
        columns = COLUMNS[scenario]
        plot = os.path.relpath(PLOTS / f"reproduce-{scenario}.png", OUT)  # summary.md sits in OUT
        lines += [f"### {scenario}", "", f"![{scenario}]({plot})", ""]
        lines.append(
            "| variant | seeds | env steps | "
            + " | ".join(c for c, _ in columns)
            + " | steps/s | trial time |"
        )
        lines.append("|---" * (len(columns) + 5) + "|")
        for variant, trials in variants.items():
            cells = [
                "n/a" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"
                for mean, std in (mean_metric(trials, k) for _, k in columns)
            ]
            rate = np.mean([t["steps_per_s"] for t in trials])
            minutes = np.mean([t["trial_time_s"] for t in trials]) / 60
            steps = int(min(t["env_steps"] for t in trials))
            seeds = ",".join(str(t["seed"]) for t in trials)
            lines.append(
                f"| {variant} | {seeds} | {steps:,} | "
                + " | ".join(cells)
                + f" | {rate:,.0f} | {minutes:.1f} min |"
            )
        lines.append("")
    rows = claims(results)
    if rows:
        lines += ["### The paper's claims", "", "| claim | measured | holds here |", "|---|---|---|"]
        lines += [f"| {c} | {m} | {h} |" for c, m, h in rows]
        lines.append("")
    return "\n".join(lines)


def save_trial(scenario: str, variant: str, trial: dict) -> None:
    """Put one trial into the scenario's JSON, replacing a saved trial of the same variant and
    seed and keeping the rest, so a scenario can be run in parts (say one seed at a time), even
    by two `reproduce.py` processes at once: a lock file orders their read-modify-writes."""
    path = OUT / f"{scenario}.json"
    with open(OUT / f".{scenario}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = json.loads(path.read_text())["variants"] if path.exists() else {}
        trials = [t for t in saved.get(variant, []) if t["seed"] != trial["seed"]] + [trial]
        saved[variant] = sorted(trials, key=lambda t: t["seed"])
        ordered = {v: saved[v] for v in STUDY[scenario][1] if v in saved}
        meta = {"command": " ".join(sys.argv), "cpu_count": os.cpu_count(), "variants": ordered}
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(meta, indent=1) + "\n")
        partial.replace(path)  # a run killed mid-write leaves the old JSON whole


def time_left(trial_walls: list[float], remaining: int, jobs: int) -> str:
    """The rest of the run at the pace so far: the mean wall time of the trials that ended, for
    each remaining trial, `jobs` at a time. Rough: scenarios differ (speaker-listener's trials
    take about twice simple_spread's)."""
    from ray_maddpg.experiment.progress import format_duration

    if not trial_walls or remaining <= 0:
        return ""
    seconds = sum(trial_walls) / len(trial_walls) * remaining / min(jobs, remaining)
    return f"; about {format_duration(seconds)} left"


def run_trials(tasks: list[tuple[str, str, int]], args: argparse.Namespace) -> list[str]:
    """Train every (scenario, variant, seed), `--jobs` at a time, and save each as it ends
    (evaluated one at a time, in this process). Returns what failed."""
    saving = threading.Lock()
    failed, finished, walls = [], [], []

    def one(task: tuple[str, str, int]) -> None:
        scenario, variant, seed = task
        commit, key = git_commit(), resume_key(task, args, trainer_tree())
        trial, wall = train(scenario, variant, seed, args)
        with saving:
            summary = summarize_trial(trial, wall, commit, key)
            save_trial(scenario, variant, summary)
            finished.append(task)
            walls.append(wall)
            left = time_left(walls, len(tasks) - len(finished) - len(failed), args.jobs)
            print(
                f"done   {scenario} / {variant} / seed {seed} in {wall / 60:.1f} min "
                f"({len(finished)}/{len(tasks)}{left}): greedy return {summary['evaluation']['return']['mean']:.2f}",
                flush=True,
            )

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(one, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                if future.exception() is not None:
                    failed.append(f"{' / '.join(map(str, futures[future]))}: {future.exception()}")
                    print(f"failed {failed[-1]}", flush=True)
        except KeyboardInterrupt:
            pool.shutdown(cancel_futures=True)
            raise
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(STUDY), help="scenarios to run (default: all)")
    parser.add_argument(
        "--variants", nargs="+", metavar="VARIANT", help="variants to run, by name or slug (default: all)"
    )
    parser.add_argument("--steps", type=int, help="env steps per trial (default: the paper's 1.5M)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per variant (default: 0 1 2)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="trials side by side")
    parser.add_argument(
        "--envs",
        type=int,
        default=8,
        help="envs stepped as one batch in each trial's process (default 8, the presets' per runner; "
        "16 ran faster but learned simple_spread worse: docs/results.md)",
    )
    parser.add_argument(
        "--matmul-dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="every trial's matmuls (algorithm.matmul_dtype); auto: bfloat16 on a CPU with AVX512-BF16 "
        "or AMX (faster trials, learning within seed noise; docs/results.md), float32 elsewhere",
    )
    parser.add_argument(
        "--compile-env",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="step each trial's batched envs through torch.compile (env.compile; default on: 2x cheaper "
        "sampling at 8 envs, about 10 s to compile; eager with a warning where it cannot compile)",
    )
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results" / "reproduce")
    parser.add_argument(
        "--out",
        type=Path,
        help="where the JSON, summary.md and plots go (default: bench/results/reproduce and docs/img)",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="an ablation: experiment settings for every trial, as `ray-maddpg train --set` takes them "
        "(e.g. 'algorithm.actor_hidden=[256,256]'); needs --out, so the paper's results stay apart",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip the trials already saved by a run with the same settings and the same committed "
        "trainer/ (a run cut short goes on where it stopped)",
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild tables and plots")
    parser.add_argument(
        "--reevaluate", action="store_true", help="evaluate the saved trials' checkpoints again, then report"
    )
    args = parser.parse_args()
    if args.set and not args.out:
        parser.error("--set changes every trial's settings: give --out DIR for its results")
    malformed = [s for s in args.set if "=" not in s]
    if malformed:
        parser.error(f"--set takes KEY=VALUE (got {', '.join(map(repr, malformed))})")
    if args.envs < 1:
        parser.error(f"--envs must be at least 1 (got {args.envs})")
    if args.matmul_dtype == "auto":
        from ray_maddpg.maddpg.core import bf16_is_native  # torch: imported only when needed

        args.bf16_native = bf16_is_native("cpu")
    args.results_dir = args.results_dir.resolve()
    if args.out:
        global OUT, PLOTS
        OUT = PLOTS = args.out.resolve()
    scenarios = args.only or list(STUDY)
    known = {name: name for s in scenarios for name in STUDY[s][1]}
    known |= {slug(name): name for name in list(known)}
    unknown = [v for v in args.variants or [] if v not in known]
    if unknown:
        choices = ", ".join(sorted({repr(slug(n)) for n in known.values()}))
        parser.error(f"--variants: unknown {', '.join(map(repr, unknown))}; the scenarios run have {choices}")
    chosen = {known[v] for v in args.variants} if args.variants else set(known.values())

    OUT.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    if args.reevaluate:
        for scenario in args.only or [s for s in STUDY if (OUT / f"{s}.json").exists()]:
            reevaluate(scenario)
    elif not args.report_only:
        # Seed by seed, so a run cut short leaves whole comparisons (every variant of a seed).
        tasks = [
            (scenario, variant, seed)
            for scenario in scenarios
            for seed in args.seeds
            for variant in STUDY[scenario][1]
            if variant in chosen
        ]
        if args.resume:
            tree = trainer_tree()
            if tree is None:
                print(
                    "reproduce: --resume reuses nothing: trainer/ has uncommitted changes (or git is missing)",
                    flush=True,
                )
            kept = [t for t in tasks if already_saved(t, args, tree)]
            tasks = [t for t in tasks if t not in kept]
            for scenario, variant, seed in kept:
                print(f"kept   {scenario} / {variant} / seed {seed} (saved with these settings)", flush=True)
        print(
            f"reproduce: {len(tasks)} trial{'s' * (len(tasks) != 1)}, {args.jobs} at a time, {args.envs} envs "
            f"each{', env step compiled' if args.compile_env else ''}; matmuls in {matmul_dtype(args)}; "
            "each is saved as it ends",
            flush=True,
        )
        failed = run_trials(tasks, args)

    results = {}
    for scenario in STUDY:
        path = OUT / f"{scenario}.json"
        if path.exists():
            results[scenario] = json.loads(path.read_text())["variants"]
            print(f"plot: {plot(scenario, results[scenario])}")
    summary = report(results)
    (OUT / "summary.md").write_text(summary)
    print(summary)
    if failed:  # after the report, which has every trial that did finish
        sys.exit("reproduce: these trials failed (the others are saved):\n  " + "\n  ".join(failed))


if __name__ == "__main__":
    main()
