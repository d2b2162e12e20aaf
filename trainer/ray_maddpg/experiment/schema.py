"""The experiment file: load, apply ``--set`` overrides, validate every field at once.

Nothing here starts Ray. ``load_experiment`` either returns a fully checked ``Experiment``
or raises one ``ConfigError`` that lists every invalid field by its dotted name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ray_maddpg.errors import ConfigError
from ray_maddpg.validation import (
    Check,
    boolean,
    int_at_least,
    list_of,
    number,
    number_above,
    optional,
    problem,
)

SEARCH_KINDS = ("grid_search", "choice")

# Stop conditions: the user's name -> the result key Tune compares with ``>=``.
STOP_METRICS = {
    "env_steps": "env_runners/num_env_steps_sampled_lifetime",
    "training_iteration": "training_iteration",
    "time_total_s": "time_total_s",
    "episode_return_mean": "env_runners/episode_return_mean",
    # Env runners lost and restored (RLlib's count): ends a fault drill once recovery is shown.
    "env_runner_restarts": "fault_tolerance/num_remote_worker_restarts",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; learning rates are written that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


@dataclass(frozen=True)
class Resources:
    num_env_runners: int = 0
    num_envs_per_env_runner: int = 8
    num_cpus_per_env_runner: float = 1
    num_gpus_per_learner: float = 0


@dataclass(frozen=True)
class CheckpointSpec:
    every_iterations: int = 10  # 0: only at the end
    keep: int | None = 3  # None: keep all


@dataclass(frozen=True)
class EvaluationSpec:
    every_iterations: int = 0  # 0: no evaluation during training
    episodes: int = 10
    gif: bool = False


@dataclass(frozen=True)
class TuneSpec:
    num_samples: int = 1
    seeds: tuple[int, ...] | None = None  # None: the experiment's single ``seed``
    max_concurrent_trials: int | None = None


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file. ``env`` and ``algorithm`` may hold search spaces."""

    name: str
    scenario: str
    env: dict[str, Any]
    algorithm: dict[str, Any]
    stop: dict[str, float]
    resources: Resources = field(default_factory=Resources)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    tune: TuneSpec = field(default_factory=TuneSpec)
    seed: int = 0
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def env_config(self) -> dict[str, Any]:
        return {"scenario": self.scenario, **self.env}


# ---------------------------------------------------------------- loading and overrides


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([("config", f"file not found: {path}")])
    try:
        data = parse_yaml(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError([("config", f"malformed YAML{where}: {problem}")], source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError([("config", "must be a YAML mapping (key: value lines)")], source=str(path))
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a copy of ``data``."""
    data = _deep_copy(data)
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            problems.append((f"--set {item}", "must look like key.sub=value"))
            continue
        try:
            value = parse_yaml(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append((".".join(parts[: depth + 1]), f"is not a section, cannot set {key}"))
                break
            node = child
        else:
            node[parts[-1]] = value
    if problems:
        raise ConfigError(problems)
    return data


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    data = apply_overrides(read_yaml(path), overrides or [])
    try:
        return validate_experiment(data, default_name=Path(path).stem)
    except ConfigError as err:
        raise ConfigError(err.problems, source=str(path)) from None


# ---------------------------------------------------------------- search spaces


def search_kind(value: Any) -> str | None:
    """``grid_search`` / ``choice`` when ``value`` is a search-space mapping, else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key,) = value
        if key in SEARCH_KINDS:
            return key
    return None


def search_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of every search space under ``tree``."""
    found = []
    for key, value in tree.items():
        if search_kind(value):
            found.append((*prefix, key))
        elif isinstance(value, dict):
            found.extend(search_paths(value, (*prefix, key)))
    return found


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _with(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    tree = _deep_copy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _candidates(tree: dict[str, Any], prefix: str, problems: list) -> list[dict[str, Any]]:
    """Concrete variants that cover every value of every search space at least once.

    Each variant fixes all search spaces to their first value except one, so validating
    the variants checks each candidate value without enumerating the whole grid.
    """
    paths = search_paths(tree)
    bad = [p for p in paths if not _search_values_ok(_get(tree, p))]
    for path in bad:
        kind = search_kind(_get(tree, path))
        problems.append((_dotted(prefix, path), f"{kind} must be a non-empty list of values"))
    paths = [p for p in paths if p not in bad]
    if bad:
        return []
    base = tree
    for path in paths:
        base = _with(base, path, _first_value(_get(tree, path)))
    variants = [base]
    for path in paths:
        for value in _search_values(_get(tree, path))[1:]:
            variants.append(_with(base, path, value))
    return variants


def _search_values(space: dict[str, Any]) -> list:
    return next(iter(space.values()))


def _first_value(space: dict[str, Any]) -> Any:
    return _search_values(space)[0]


def _search_values_ok(space: dict[str, Any]) -> bool:
    values = _search_values(space)
    return isinstance(values, list) and len(values) > 0


def _dotted(prefix: str, path: tuple[str, ...]) -> str:
    return ".".join((prefix, *path)) if prefix else ".".join(path)


def to_tune_space(tree: Any) -> Any:
    """Turn ``{grid_search: [...]}`` / ``{choice: [...]}`` mappings into Tune search spaces."""
    from ray import tune

    kind = search_kind(tree)
    if kind == "grid_search":
        return tune.grid_search(_search_values(tree))
    if kind == "choice":
        return tune.choice(_search_values(tree))
    if isinstance(tree, dict):
        return {k: to_tune_space(v) for k, v in tree.items()}
    return tree


# ---------------------------------------------------------------- validation

SECTIONS: dict[str, dict[str, Check]] = {
    "resources": {
        "num_env_runners": int_at_least(0),
        "num_envs_per_env_runner": int_at_least(1),
        "num_cpus_per_env_runner": number_above(0, strict=True),
        "num_gpus_per_learner": number_above(0),
    },
    "stop": {
        "env_steps": int_at_least(1),
        "training_iteration": int_at_least(1),
        "time_total_s": number_above(0, strict=True),
        "episode_return_mean": number,
        "env_runner_restarts": int_at_least(1),
    },
    "checkpoint": {"every_iterations": int_at_least(0), "keep": optional(int_at_least(1))},
    "evaluation": {"every_iterations": int_at_least(0), "episodes": int_at_least(1), "gif": boolean},
    "tune": {
        "num_samples": int_at_least(1),
        "seeds": optional(list_of(int_at_least(0), "integers >= 0")),
        "max_concurrent_trials": optional(int_at_least(1)),
    },
}

TOP_LEVEL = ("name", "description", "scenario", "env", "algorithm", "seed", *SECTIONS)


def _check_section(name: str, value: Any, problems: list) -> dict[str, Any]:
    checks = SECTIONS[name]
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append((name, f"must be a mapping with keys: {', '.join(checks)}"))
        return {}
    for key, item in value.items():
        if key not in checks:
            problems.append((f"{name}.{key}", f"unknown key; allowed: {', '.join(checks)}"))
            continue
        if search_kind(item):
            problems.append((f"{name}.{key}", "search spaces are only allowed under env and algorithm"))
            continue
        message = problem(checks[key], item)
        if message:
            problems.append((f"{name}.{key}", message))
    return {k: v for k, v in value.items() if k in checks}


def _check_env(scenario: Any, env: Any, problems: list) -> dict[str, Any] | None:
    """Check every candidate env; return one concrete valid env config, or None."""
    from ray_maddpg.envs import validate_env_config

    if not isinstance(env, dict):
        problems.append(
            (
                "env",
                "must be a mapping of scenario options (and backend: mpe2 or batched; compile: true or false)",
            )
        )
        return None
    variants = _candidates(env, "env", problems) or ([] if search_paths(env) else [env])
    before = len(problems)
    seen = set()
    for variant in variants:
        try:
            validate_env_config(scenario, variant, field_prefix="env")
        except ConfigError as err:
            for dotted, message in err.problems:
                # The scenario is a top-level key of the experiment file.
                dotted = "scenario" if dotted == "env.scenario" else dotted
                if (dotted, message) not in seen:
                    seen.add((dotted, message))
                    problems.append((dotted, message))
    if len(problems) > before or not variants:
        return None
    return {"scenario": scenario, **variants[0]}


def _check_algorithm(algorithm: Any, env_config: dict[str, Any] | None, problems: list) -> None:
    from ray_maddpg.maddpg import MADDPGConfig

    allowed = ", ".join(MADDPGConfig.USER_FIELDS)
    if not isinstance(algorithm, dict):
        problems.append(("algorithm", f"must be a mapping of: {allowed}"))
        return
    unknown = [k for k in algorithm if k not in MADDPGConfig.USER_FIELDS]
    for key in unknown:
        problems.append((f"algorithm.{key}", f"unknown key; allowed: {allowed}"))
    known = {k: v for k, v in algorithm.items() if k not in unknown}
    seen = set()
    for variant in _candidates(known, "algorithm", problems) or ([] if search_paths(known) else [known]):
        for dotted, message in validate_algorithm_fields(variant, env_config):
            if (dotted, message) not in seen:
                seen.add((dotted, message))
                problems.append((dotted, message))


def validate_algorithm_fields(
    fields: dict[str, Any], env_config: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """Problems with concrete ``algorithm`` values, as judged by ``MADDPGConfig`` itself.

    With a valid ``env_config`` it also checks per-team settings against the scenario's agent ids,
    read from the scenario's spec: checking a file builds no env.
    """
    from ray_maddpg.envs.batched import scenario_agents
    from ray_maddpg.maddpg import MADDPGConfig

    config = MADDPGConfig().training(**fields)
    try:
        config.validate()
    except ConfigError as err:
        return err.problems
    except (ValueError, TypeError) as err:
        return [("algorithm", str(err))]
    if env_config is None:
        return []
    options = {k: v for k, v in env_config.items() if k != "scenario"}
    agents = scenario_agents(env_config["scenario"], **options)
    return config.setting_problems(agents, [not options.get("continuous_actions", False)])


def validate_experiment(data: dict[str, Any], default_name: str = "experiment") -> Experiment:
    problems: list[tuple[str, str]] = []
    for key in data:
        if key not in TOP_LEVEL:
            problems.append((key, f"unknown key; allowed: {', '.join(TOP_LEVEL)}"))

    name = data.get("name", default_name)
    if not (isinstance(name, str) and _NAME.match(name)):
        problems.append(("name", f"must be letters, digits, '.', '_' or '-' (got {name!r})"))
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append(("description", "must be a string"))
    seed = data.get("seed", 0)
    if message := problem(int_at_least(0), seed):
        problems.append(("seed", message))

    scenario = data.get("scenario")
    env_config = None
    if scenario is None:
        problems.append(("scenario", "is required"))
    else:
        env_config = _check_env(scenario, data.get("env") or {}, problems)
    _check_algorithm(data.get("algorithm") or {}, env_config, problems)

    sections = {name: _check_section(name, data.get(name), problems) for name in SECTIONS}
    if not sections["stop"] and not any(p[0].startswith("stop") for p in problems):
        problems.append(("stop", f"needs at least one of: {', '.join(STOP_METRICS)}"))

    if problems:
        raise ConfigError(problems)
    tune_section = dict(sections["tune"])
    if tune_section.get("seeds") is not None:
        tune_section["seeds"] = tuple(tune_section["seeds"])
    return Experiment(
        name=name,
        scenario=scenario,
        env=dict(data.get("env") or {}),
        algorithm=dict(data.get("algorithm") or {}),
        stop=dict(sections["stop"]),
        resources=Resources(**sections["resources"]),
        checkpoint=CheckpointSpec(**sections["checkpoint"]),
        evaluation=EvaluationSpec(**sections["evaluation"]),
        tune=TuneSpec(**tune_section),
        seed=seed,
        description=description,
        raw=data,
    )


def grid_size(experiment: Experiment) -> int:
    """How many trials the experiment runs (grid points × seeds × num_samples)."""
    sizes = [
        len(_search_values(_get(tree, p)))
        for tree in (experiment.env, experiment.algorithm)
        for p in search_paths(tree)
        if search_kind(_get(tree, p)) == "grid_search"
    ]
    sizes.append(len(experiment.tune.seeds or (experiment.seed,)))
    return experiment.tune.num_samples * math.prod(sizes)


__all__ = [
    "STOP_METRICS",
    "CheckpointSpec",
    "EvaluationSpec",
    "Experiment",
    "Resources",
    "TuneSpec",
    "apply_overrides",
    "grid_size",
    "load_experiment",
    "read_yaml",
    "search_paths",
    "to_tune_space",
    "validate_experiment",
]
