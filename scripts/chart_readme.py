"""Generate charts/ray-maddpg/README.md from the `# --` comments in values.yaml.

    python scripts/chart_readme.py            rewrite the README
    python scripts/chart_readme.py --check    exit 1 when the README is out of date

A `# -- text` line documents the key right below it; its default is that key's whole value.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "ray-maddpg"
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(\s|$)")
DOC_LINE = re.compile(r"^ *# -- (?P<text>.+)$")

HEADER = """# ray-maddpg Helm chart

A Ray cluster for MADDPG on RLlib: a head pod (Ray head, JupyterLab and TensorBoard sharing the
results volume), GPU worker pods, and a Job that submits the experiment with `ray-maddpg submit` (`ray job submit`).
The project README's "Cluster" section walks through installing it.

```bash
helm install ray-maddpg charts/ray-maddpg -f values/gpu-single-node.yaml
helm test ray-maddpg
```

## Values

Generated from the comments in `values.yaml` by `scripts/chart_readme.py`; `values.schema.json`
checks every value at install time.

| Key | Default | Description |
|-----|---------|-------------|
"""


def documented_keys(values_text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key with a `# --` comment, in file order."""
    stack: list[tuple[int, str]] = []
    pending: str | None = None
    found = []
    for line in values_text.splitlines():
        doc = DOC_LINE.match(line)
        if doc:
            pending = doc.group("text").strip()
            continue
        key = KEY_LINE.match(line)
        if not key:
            continue
        indent = len(key.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key.group("key")))
        if pending is not None:
            found.append((".".join(name for _, name in stack), pending))
            pending = None
    return found


def leaf_paths(tree: dict, prefix: str = "") -> list[str]:
    """Dotted paths of every value that is not a non-empty mapping."""
    paths = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths.extend(leaf_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def undocumented(values_text: str) -> list[str]:
    """Values that neither have a `# --` comment nor sit under a key that has one."""
    documented = {key for key, _ in documented_keys(values_text)}
    values = yaml.safe_load(values_text)
    return [
        path
        for path in leaf_paths(values)
        if not any(path == key or path.startswith(key + ".") for key in documented)
    ]


def lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(values_text: str) -> str:
    values = yaml.safe_load(values_text)
    rows = [
        f"| `{key}` | `{cell(json.dumps(lookup(values, key)))}` | {cell(text)} |"
        for key, text in documented_keys(values_text)
    ]
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args(argv)
    values_text = (CHART / "values.yaml").read_text()
    missing = undocumented(values_text)
    if missing:
        print("values without a `# --` comment: " + ", ".join(missing), file=sys.stderr)
        return 1
    readme = CHART / "README.md"
    expected = render(values_text)
    if args.check:
        if not readme.is_file() or readme.read_text() != expected:
            print(f"{readme} is out of date: run python scripts/chart_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(expected)
    print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
