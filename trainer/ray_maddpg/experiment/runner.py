"""Run a validated experiment through Ray Tune: one trial, or a sweep; fresh or resumed."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from ray_maddpg.errors import ConfigError, RayUnavailableError, first_line
from ray_maddpg.experiment.schema import (
    STOP_METRICS,
    Experiment,
    Resources,
    grid_size,
    read_yaml,
    to_tune_space,
    validate_experiment,
)

EXPERIMENT_FILE = "experiment.yaml"  # the validated file, kept next to the trials
LOCAL_START_ATTEMPTS = 5
LOCAL_START_BACKOFF_S = 5.0  # attempt k + 1 waits k times this, so a burst of load can pass


@dataclass
class RunOutcome:
    experiment_dir: Path
    trials: list[dict[str, Any]]  # {"name", "path", "checkpoint", "status", "error"}

    @property
    def failed(self) -> bool:
        return any(t["status"] == "ERROR" for t in self.trials)

    @property
    def interrupted(self) -> bool:
        return any(t["status"] == "INTERRUPTED" for t in self.trials)


def algorithm_config(experiment: Experiment) -> Any:
    """The ``MADDPGConfig`` (with Tune search spaces where the file has them)."""
    from ray import tune

    from ray_maddpg.envs import ENV_NAME, register_mpe_env
    from ray_maddpg.experiment.callbacks import train_result_hooks
    from ray_maddpg.maddpg import MADDPGConfig

    register_mpe_env()
    r, ev = experiment.resources, experiment.evaluation
    seeds = experiment.tune.seeds
    return (
        MADDPGConfig()
        .environment(ENV_NAME, env_config=to_tune_space(experiment.env_config))
        .training(**to_tune_space(experiment.algorithm))
        .env_runners(
            num_env_runners=r.num_env_runners,
            num_envs_per_env_runner=r.num_envs_per_env_runner,
            num_cpus_per_env_runner=r.num_cpus_per_env_runner,
        )
        .learners(num_gpus_per_learner=r.num_gpus_per_learner)
        .debugging(seed=tune.grid_search(list(seeds)) if seeds else experiment.seed, log_level="ERROR")
        .callbacks(on_train_result=train_result_hooks(ev.every_iterations, ev.episodes, ev.gif))
    )


def trial_fit_problems(resources: Resources, cluster: dict[str, float]) -> list[tuple[str, str]]:
    """What one trial asks of Ray (as RLlib requests it: one CPU for the trial's own process, which
    also holds the learner and its GPUs, plus each env runner's CPUs) that ``cluster``
    (``ray.cluster_resources()``) can never give. Tune would wait for it forever, so a local Ray,
    which cannot grow, refuses it up front."""
    problems = []
    runners, per_runner = resources.num_env_runners, resources.num_cpus_per_env_runner
    cpus, have_cpus = 1 + runners * per_runner, cluster.get("CPU", 0)
    if cpus > have_cpus:
        problems.append(
            (
                "resources",
                f"one trial needs {cpus:g} CPUs (1 for the trial's own process + {runners} env runner(s) "
                f"x {per_runner:g}), but this Ray has {have_cpus:g}: lower resources.num_env_runners "
                "(0 samples in the trial's own process) or resources.num_cpus_per_env_runner",
            )
        )
    gpus, have_gpus = resources.num_gpus_per_learner, cluster.get("GPU", 0)
    if gpus > have_gpus:
        problems.append(
            (
                "resources.num_gpus_per_learner",
                f"one trial needs {gpus:g} GPU(s), but this Ray has {have_gpus:g}: set it to 0 here",
            )
        )
    return problems


def ray_address(address: str | None) -> str | None:
    """The Ray to join: ``--address``, else ``RAY_ADDRESS`` (set inside ``ray job submit``); None
    means an embedded local Ray."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_address(address: str | None) -> None:
    """Refuse, in a second and with one message, an address where no Ray answers: ``ray.init``
    would retry a wrong one for minutes, printing GCS warnings. ``auto`` / ``local`` pass."""
    given = address
    address = ray_address(address)
    if address is None or address in ("auto", "local"):
        return
    field = "--address" if given else "RAY_ADDRESS"
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "ray"):
        message = (
            f"{address!r} is not a Ray address: give the GCS address host:6379, or ray://host:10001 "
            "(http://host:8265 is the dashboard's, for `ray job submit`)"
        )
        raise ConfigError([(field, message)])
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError([(field, f"{address!r} is not host:port (e.g. 127.0.0.1:6379)")])
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        message = (
            f"no Ray answers at {address} ({err.strerror or err}): start one with `ray start --head`, "
            "or leave the address out to train on an embedded local Ray"
        )
        raise ConfigError([(field, message)]) from None


def connect(address: str | None) -> str:
    """Join ``ray_address(address)``, or start a local Ray when there is none."""
    import ray

    address = ray_address(address)
    quiet = {
        "logging_level": logging.ERROR,
        "runtime_env": {"worker_process_setup_hook": "ray_maddpg.experiment.runner.quiet_worker"},
    }
    if address:
        ray.init(address=address, **quiet)
        return f"Ray cluster at {address}"
    # On a saturated machine Ray's node startup can miss its fixed waits (the raylet allows the
    # dashboard agent 15 s, ray-project/ray#65983); a later attempt usually makes it.
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(address="local", include_dashboard=False, **quiet)
            break
        except Exception as err:
            ray.shutdown()
            if "timed out during startup" not in str(err) or attempt == LOCAL_START_ATTEMPTS:
                logs = ray_logs_dir()
                cause = raylet_failure(logs)
                because = f"; {cause}" if cause else ""
                raise RayUnavailableError(
                    f"the embedded local Ray did not start (attempt {attempt} of {LOCAL_START_ATTEMPTS}: "
                    f"{first_line(err)}){because}; is the machine saturated? Ray's logs: {logs}"
                ) from err
            wait = attempt * LOCAL_START_BACKOFF_S
            print(
                f"local Ray did not start in time (attempt {attempt}); retrying in {wait:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(wait)
    return "embedded local Ray"


def ray_logs_dir() -> Path:
    """The logs of the newest local Ray session (Ray's own default temp dir rules)."""
    from ray._common.utils import get_default_ray_temp_dir

    return Path(get_default_ray_temp_dir()) / "session_latest" / "logs"


def raylet_failure(logs: Path) -> str | None:
    """The raylet's reason for a failed start, when its log holds one we know; Ray's own error
    says only that the node timed out."""
    for name in ("raylet.out", "raylet.err"):
        try:
            text = (logs / name).read_text(errors="replace")
        except OSError:
            continue
        if "Timed out waiting for file" in text:
            return (
                "the raylet stopped waiting for its dashboard agent, which Ray gives a fixed 15 s "
                "to start (ray-project/ray#65983)"
            )
    return None


def quiet_worker() -> None:
    """Runs in every Ray worker: keep errors and our own prints, drop RLlib/Tune notices."""
    import warnings

    warnings.filterwarnings("ignore")
    _quiet_loggers()


def _quiet_loggers() -> None:
    for name in ("ray", "ray.rllib", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _quiet_ray() -> None:
    # The old (non-AIR) output path prints nothing at verbose=0; the new one always prints
    # a header with a misleading TensorBoard path.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune snapshots the experiment state (which checkpoints exist) every 10 s or more by default;
    # a driver that dies between a checkpoint and the next snapshot resumes from the one before.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    for name in ("ray", "ray.tune", "ray.rllib", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _run_config(experiment: Experiment, results_dir: Path, run_name: str, stream: TextIO | None) -> Any:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    from ray_maddpg.experiment.progress import ProgressPrinter

    stop = {STOP_METRICS[k]: v for k, v in experiment.stop.items()}
    ck = experiment.checkpoint
    return tune.RunConfig(
        name=run_name,
        storage_path=str(results_dir),
        stop=stop,
        verbose=0,
        callbacks=[
            ProgressPrinter(experiment.stop, stream),
            TBXLoggerCallback(),
            CSVLoggerCallback(),
            JsonLoggerCallback(),
        ],
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=ck.keep, checkpoint_frequency=ck.every_iterations, checkpoint_at_end=True
        ),
        # Evaluation GIFs and frame events are written in the trial's working dir.
        sync_config=tune.SyncConfig(sync_artifacts=True),
        failure_config=tune.FailureConfig(max_failures=0),
    )


def new_run_name(experiment: Experiment) -> str:
    return f"{experiment.name}_{time.strftime('%Y%m%d-%H%M%S')}"


def latest_run(results_dir: Path, name: str) -> Path:
    """The newest ``<name>_<timestamp>`` experiment dir that Tune can restore."""
    runs = sorted(p.parent for p in results_dir.glob(f"{name}_*/tuner.pkl"))
    if not runs:
        raise ConfigError([("--resume", f"no interrupted run of experiment {name!r} under {results_dir}")])
    return runs[-1]


def check_resumable(run_dir: Path, experiment: Experiment) -> None:
    """Refuse to resume a run of another scenario or env (its checkpoints would not load)."""
    stored = read_yaml(run_dir / EXPERIMENT_FILE)
    previous = validate_experiment(stored, default_name=experiment.name)
    problems = []
    if previous.scenario != experiment.scenario:
        problems.append(
            ("scenario", f"{run_dir} was trained on {previous.scenario!r}, not {experiment.scenario!r}")
        )
    if previous.env != experiment.env:
        problems.append(("env", f"{run_dir} was run with env {previous.env}, not {experiment.env}"))
    if problems:
        raise ConfigError(problems)


def run(
    experiment: Experiment,
    results_dir: str | Path,
    *,
    address: str | None = None,
    resume: bool = False,
    stream: TextIO | None = None,
) -> RunOutcome:
    """Train (or resume) ``experiment``; input errors are raised before Ray starts."""
    stream = stream or sys.stdout
    results_dir = Path(results_dir).resolve()
    if resume:
        run_dir = latest_run(results_dir, experiment.name)
        check_resumable(run_dir, experiment)
    else:
        run_dir = results_dir / new_run_name(experiment)

    import ray
    from ray import tune

    from ray_maddpg.maddpg import MADDPG

    _quiet_ray()
    # A caller that already joined Ray (the notebook) keeps its connection.
    owns_connection = not ray.is_initialized()
    if owns_connection:
        check_address(address)
    local = owns_connection and ray_address(address) is None
    where = connect(address) if owns_connection else "the connected Ray"
    try:
        if resume:
            print(f"Resuming {run_dir} on {where}", file=stream, flush=True)
            tuner = tune.Tuner.restore(str(run_dir), trainable=MADDPG, resume_errored=True)
        else:
            trials = grid_size(experiment)
            print(
                f"Training {experiment.name} ({experiment.scenario}, {trials} trial{'s' * (trials > 1)}) "
                f"on {where}; results in {run_dir}",
                file=stream,
                flush=True,
            )
            param_space = algorithm_config(experiment)
            if local and (problems := trial_fit_problems(experiment.resources, ray.cluster_resources())):
                raise ConfigError(problems)
            run_dir.mkdir(parents=True)
            (run_dir / EXPERIMENT_FILE).write_text(yaml.safe_dump(experiment.raw, sort_keys=False))
            tuner = tune.Tuner(
                MADDPG,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    num_samples=experiment.tune.num_samples,
                    max_concurrent_trials=experiment.tune.max_concurrent_trials,
                ),
                run_config=_run_config(experiment, results_dir, run_dir.name, stream),
            )
        grid = tuner.fit()
        trials = [_describe(result) for result in grid]
    finally:
        if owns_connection:
            ray.shutdown()
    return RunOutcome(run_dir, trials)


def _describe(result: Any) -> dict[str, Any]:
    checkpoint = result.checkpoint.path if result.checkpoint else None
    metrics = result.metrics or {}
    return {
        "name": Path(result.path).name,
        "path": result.path,
        "checkpoint": checkpoint,
        "status": "ERROR" if result.error else "TERMINATED" if metrics.get("done") else "INTERRUPTED",
        "error": str(result.error).splitlines()[0] if result.error else None,
        "return_mean": metrics.get("env_runners", {}).get("episode_return_mean"),
    }


def print_summary(outcome: RunOutcome, config_path: str = "<file>", stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    lines = ["", f"Results:      {outcome.experiment_dir}"]
    states = {"TERMINATED": "done", "INTERRUPTED": "interrupted", "ERROR": "FAILED"}
    for trial in outcome.trials:
        state = states[trial["status"]] + (f": {trial['error']}" if trial["error"] else "")
        lines.append(f"  {trial['name']}: {state}")
        if trial["checkpoint"]:
            lines.append(f"    checkpoint: {trial['checkpoint']}")
    lines.append(f"TensorBoard:  tensorboard --logdir {outcome.experiment_dir}")
    with_checkpoint = [t for t in outcome.trials if t["checkpoint"]]
    if with_checkpoint:
        checkpoint = with_checkpoint[0]["checkpoint"]
        lines.append(f"Evaluate:     ray-maddpg evaluate --checkpoint {checkpoint} --episodes 100")
        lines.append(f"Render:       ray-maddpg render --checkpoint {checkpoint} --out run.gif")
    if outcome.failed or outcome.interrupted:
        lines.append(
            f"Resume:       ray-maddpg train --config {config_path} --resume --results-dir {outcome.experiment_dir.parent}"
        )
    print("\n".join(lines), file=stream, flush=True)
