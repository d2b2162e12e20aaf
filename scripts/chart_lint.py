"""Lint or render the Helm chart with the real Helm engine (helm-python-sdk), no helm binary needed.

python scripts/chart_lint.py charts/ray-maddpg [-f values/cpu-only.yaml]
    lint strictly (warnings count as errors); exit 1 on any finding
python scripts/chart_lint.py template charts/ray-maddpg [-f VALUES]... [--set key=value]...
    [--name RELEASE] [--namespace NS] [--output-dir DIR]
    render like `helm template`; exit 2 when the values break the chart's schema
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import helm_python
import yaml

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def load_values(files: list[str], sets: list[str]) -> dict:
    values: dict = {}
    for file in files:
        values = merge(values, yaml.safe_load(Path(file).read_text()) or {})
    for item in sets:
        values = merge(values, helm_python.parse_set_string(item))
    return values


def merge(base: dict, override: dict) -> dict:
    """Later values win key by key, as with `helm -f a.yaml -f b.yaml`."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def lint(chart: str, values: dict) -> int:
    report = helm_python.lint(chart, values or None, strict=True)
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    for message in report["messages"]:
        print(f"[{SEVERITY.get(message['severity'], '?')}] {message['path']}: {message['error'].strip()}")
    print(f"{chart}: {len(findings)} error(s) or warning(s)")
    return 1 if findings else 0


def template(chart: str, values: dict, name: str, namespace: str, output_dir: str | None) -> int:
    try:
        rendered = helm_python.Chart.load(chart).render(values, name=name, namespace=namespace)
    except helm_python.HelmValuesError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    manifests = {
        path: text for path, text in sorted(rendered.items()) if path.endswith(".yaml") and text.strip()
    }
    if output_dir:
        for path, text in manifests.items():
            target = Path(output_dir) / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        print(f"wrote {len(manifests)} manifests under {output_dir}")
    else:
        sys.stdout.write(
            "".join(f"---\n# Source: {path}\n{text.strip()}\n" for path, text in manifests.items())
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rendering = bool(argv) and argv[0] == "template"
    parser = argparse.ArgumentParser(prog="chart_lint.py" + (" template" if rendering else ""))
    parser.add_argument("chart", help="chart directory")
    parser.add_argument("-f", "--values", action="append", default=[], help="values file (repeatable)")
    parser.add_argument("--set", action="append", default=[], help="key=value override (repeatable)")
    if rendering:
        parser.add_argument("--name", default="ray-maddpg", help="release name")
        parser.add_argument("--namespace", default="default", help="release namespace")
        parser.add_argument("--output-dir", help="write one file per template instead of printing")
    args = parser.parse_args(argv[1:] if rendering else argv)
    values = load_values(args.values, args.set)
    if rendering:
        return template(args.chart, values, args.name, args.namespace, args.output_dir)
    return lint(args.chart, values)


if __name__ == "__main__":
    sys.exit(main())
