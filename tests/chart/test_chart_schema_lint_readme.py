"""values.schema.json rejects bad values by name, Helm lint is clean, and the values README is current."""

from __future__ import annotations

import json
import subprocess
import sys

import helm_python
import pytest
import yaml
from support.render import CHART_DIR, NAMESPACE, RELEASE, ROOT, VALUE_SETS, chart

sys.path.insert(0, str(ROOT / "scripts"))
import chart_readme  # noqa: E402

BAD_VALUES = {
    "negative replicas": ({"worker": {"replicas": -1}}, "at '/worker/replicas': minimum: got -1, want 0"),
    "GPU count as a word": ({"worker": {"gpus": "one"}}, "at '/worker/gpus': got string, want integer"),
    "head GPU count as a word": ({"head": {"gpus": "one"}}, "at '/head/gpus': got string, want integer"),
    "unknown top-level key": ({"workers": {"replicas": 2}}, "additional properties 'workers' not allowed"),
    "nodePort below the range": (
        {"jupyter": {"service": {"nodePort": 8888}}},
        "at '/jupyter/service/nodePort': minimum: got 8,888, want 30,000",
    ),
    "nodePort above the range": (
        {"tensorboard": {"service": {"nodePort": 32768}}},
        "at '/tensorboard/service/nodePort': maximum: got 32,768, want 32,767",
    ),
    "a port above 65535": (
        {"head": {"ports": {"dashboard": 70000}}},
        "at '/head/ports/dashboard': maximum: got 70,000, want 65,535",
    ),
    "a ray start flag the chart sets itself": (
        {"worker": {"rayStartParams": {"num-gpus": 2}}},
        "at '/worker/rayStartParams/num-gpus'",
    ),
    "S3 storage without a URI": ({"storage": {"type": "s3"}}, "at '/storage/s3/uri'"),
    "an unknown storage type": ({"storage": {"type": "nfs"}}, "at '/storage/type'"),
    "no PVC to create and none given": (
        {"storage": {"pvc": {"create": False}}},
        "at '/storage/pvc/existingClaim'",
    ),
}


@pytest.mark.parametrize("values, message", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_rejects_a_bad_value_with_a_message_naming_the_field(values, message):
    with pytest.raises(helm_python.HelmValuesError) as error:
        chart().render(values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(error.value)


def test_schema_accepts_a_fixed_node_port_inside_the_range():
    chart().validate_schema(
        {"jupyter": {"service": {"nodePort": 30000}}, "tensorboard": {"service": {"nodePort": 32767}}}
    )


def test_every_example_values_file_passes_the_schema(value_set):
    chart().validate_schema(VALUE_SETS[value_set])


def schema_node(schema: dict, dotted: str) -> dict:
    for part in dotted.split("."):
        schema = schema["properties"][part]
    return schema


def test_schema_describes_every_value_in_values_yaml():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values_text = (CHART_DIR / "values.yaml").read_text()
    for key, _ in chart_readme.documented_keys(values_text):
        node = schema_node(schema, key)
        assert node.get("description"), key
        parent = schema_node(schema, key.rsplit(".", 1)[0]) if "." in key else schema
        assert parent.get("additionalProperties") is False, f"typos under {key}'s parent are not caught"


@pytest.mark.parametrize("kube_version", ["v1.35.0", "v1.36.0", "v1.37.0"])
def test_helm_lint_is_clean_in_strict_mode_for_every_values_set(kube_version):
    for name, values in VALUE_SETS.items():
        report = helm_python.lint(CHART_DIR, values or None, strict=True, kube_version=kube_version)
        assert report["messages"] == [] and report["errors"] == [], name


def test_chart_lint_script_exits_non_zero_on_a_schema_error():
    script = [sys.executable, str(ROOT / "scripts" / "chart_lint.py"), str(CHART_DIR)]
    assert subprocess.run(script, capture_output=True).returncode == 0
    bad = subprocess.run([*script, "--set", "worker.gpus=one"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "at '/worker/gpus'" in bad.stdout


def test_chart_lint_template_renders_like_helm_template(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"worker": {"replicas": 3}}))
    command = [
        sys.executable,
        str(ROOT / "scripts" / "chart_lint.py"),
        "template",
        str(CHART_DIR),
        "-f",
        str(values),
    ]
    result = subprocess.run([*command, "--set", "worker.gpus=2"], capture_output=True, text=True, check=True)
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    worker = next(
        o for o in objects if o["metadata"]["name"] == "ray-maddpg-worker" and o["kind"] == "Deployment"
    )
    assert worker["spec"]["replicas"] == 3
    assert worker["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2


def test_every_value_has_a_comment():
    assert chart_readme.undocumented((CHART_DIR / "values.yaml").read_text()) == []


def test_chart_readme_lists_every_value_with_its_current_default_and_description():
    values_text = (CHART_DIR / "values.yaml").read_text()
    readme = (CHART_DIR / "README.md").read_text()
    assert readme == chart_readme.render(values_text), "run: .venv/bin/python scripts/chart_readme.py"
    values = yaml.safe_load(values_text)
    for key, description in chart_readme.documented_keys(values_text):
        default = json.dumps(chart_readme.lookup(values, key)).replace("|", "\\|")
        assert f"| `{key}` | `{default}` | {description.replace('|', chr(92) + '|')} |" in readme
