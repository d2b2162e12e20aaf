"""`ray-maddpg` command line: train, evaluate, render, submit.

Exit codes: 0 success, 1 a trial failed, 2 bad input (nothing is written in that case),
3 the embedded local Ray could not start, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys

from ray_maddpg import __version__
from ray_maddpg.errors import ConfigError, RayUnavailableError
from ray_maddpg.validation import positive_int, problem


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ray-maddpg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ray-maddpg {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train an experiment file (one trial or a Tune sweep)")
    train.add_argument("--config", required=True, help="experiment file (YAML)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field before validation, e.g. --set algorithm.actor_lr=0.001 (repeatable)",
    )
    train.add_argument(
        "--address", help="Ray cluster to join (default: $RAY_ADDRESS if set, else an embedded local Ray)"
    )
    train.add_argument(
        "--results-dir", default="results", help="where experiments are written (default: results)"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue the newest interrupted run of this experiment"
    )

    evaluate = commands.add_parser(
        "evaluate", help="run a trained policy deterministically and report metrics"
    )
    _add_checkpoint_args(evaluate)
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes to run (default: 100)")
    evaluate.add_argument("--json", dest="json_out", metavar="OUT", help="also write the results as JSON")
    evaluate.add_argument(
        "--sampled",
        action="store_true",
        help="act as in training, with exploration noise (openai/maddpg's benchmark protocol); "
        "default: greedy actions",
    )

    render = commands.add_parser("render", help="render a trained policy to a GIF (headless)")
    _add_checkpoint_args(render)
    render.add_argument("--out", required=True, help="output GIF path")
    render.add_argument("--episodes", type=int, default=1, help="episodes in the GIF (default: 1)")

    # Listed for --help only: main() hands `submit` its arguments untouched.
    commands.add_parser(
        "submit", help="`ray job submit` that ends with a clear message, not a traceback, when it fails"
    )
    return parser


def _add_checkpoint_args(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint dir, or a trial / experiment dir (its newest checkpoint is used)",
    )
    command.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: 0)")
    command.add_argument("--scenario", help="refuse a checkpoint trained on another scenario")


def _positive(value: int, flag: str) -> None:
    if (message := problem(positive_int, value)) is not None:
        raise ConfigError([(flag, message)])


def cmd_train(args: argparse.Namespace) -> int:
    from ray_maddpg.experiment.runner import print_summary, run
    from ray_maddpg.experiment.schema import load_experiment

    experiment = load_experiment(args.config, args.overrides)
    outcome = run(experiment, args.results_dir, address=args.address, resume=args.resume)
    print_summary(outcome, args.config)
    return 1 if outcome.failed else 130 if outcome.interrupted else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ray_maddpg.experiment.evaluate import format_table, load_checked_policy, run_episodes, write_json

    _positive(args.episodes, "--episodes")
    policy = load_checked_policy(args.checkpoint, args.scenario, sampled=args.sampled, seed=args.seed)
    summary = {**run_episodes(policy, args.episodes, args.seed).summary(), "sampled": args.sampled}
    print(format_table(summary))
    if args.json_out:
        print(f"JSON: {write_json(summary, args.json_out)}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from ray_maddpg.experiment.evaluate import load_checked_policy
    from ray_maddpg.experiment.render import check_gif_path, render_gif

    _positive(args.episodes, "--episodes")
    check_gif_path(args.out)
    policy = load_checked_policy(args.checkpoint, args.scenario)
    out, frames = render_gif(policy, args.out, args.episodes, args.seed)
    print(f"GIF: {out} ({frames} frames, {args.episodes} episode{'s' * (args.episodes > 1)})")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "render": cmd_render}


def _quiet() -> None:
    # Ray and RLlib warn at import and config time (new API stack notices, deprecations);
    # the user needs none of it to run an experiment.
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import ray.rllib  # noqa: F401  (importing Ray resets its loggers' levels, so import it first)

    from ray_maddpg.experiment.runner import quiet_worker

    quiet_worker()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["submit"]:
        from ray_maddpg.submit import main as submit

        return submit(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _quiet()
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"ray-maddpg {args.command}: {err}", file=sys.stderr)
        return 2
    except RayUnavailableError as err:
        print(f"ray-maddpg {args.command}: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"ray-maddpg {args.command}: interrupted; `--resume` continues a training run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
