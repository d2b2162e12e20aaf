"""checkov's Kubernetes checks pass on the rendered chart, apart from the justified exceptions."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from support.render import NAMESPACE, RELEASE, ROOT, VALUE_SETS, chart

CHECKOV = os.environ.get("CHECKOV", str(ROOT / ".venv" / "checkov" / "bin" / "checkov"))
SKIPS = yaml.safe_load((Path(__file__).parent / "checkov_skips.yaml").read_text())
# Beyond the examples, the variant whose env carries S3 credentials.
RENDERED_SETS = VALUE_SETS | {
    "s3": {
        "storage": {"type": "s3", "s3": {"uri": "s3://bucket/runs", "credentialsSecret": "s3-credentials"}}
    }
}


@pytest.fixture(scope="module")
def findings(tmp_path_factory) -> set[tuple[str, str, str]]:
    """(check id, kind, value set) of every failed check, from one checkov run over all sets."""
    if not Path(CHECKOV).is_file():
        pytest.fail(f"checkov not found at {CHECKOV}: run `make test` (it installs checkov)")
    root = tmp_path_factory.mktemp("rendered")
    for name, values in RENDERED_SETS.items():
        for path, text in chart().render(values, name=RELEASE, namespace=NAMESPACE).items():
            if path.endswith(".yaml") and text.strip():
                target = root / name / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    result = subprocess.run(
        [CHECKOV, "-d", str(root), "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    return {
        (f["check_id"], f["resource"].split(".")[0], f["file_path"].strip("/").split("/")[0])
        for f in report["results"]["failed_checks"]
    }


def is_skipped(check: str, kind: str) -> bool:
    return any(skip["check"] == check and kind in skip["kinds"] for skip in SKIPS)


def test_checkov_reports_no_failures_beyond_the_listed_exceptions(findings):
    assert sorted(f for f in findings if not is_skipped(f[0], f[1])) == []


def test_every_listed_checkov_exception_is_still_needed_and_justified(findings):
    for skip in SKIPS:
        assert skip["why"].strip() and skip["title"].strip()
        for kind in skip["kinds"]:
            assert any(f[:2] == (skip["check"], kind) for f in findings), (
                f"{skip['check']} on {kind} no longer fails"
            )


def test_secrets_in_env_are_accepted_only_for_s3_credentials(findings):
    assert {f[2] for f in findings if f[0] == "CKV_K8S_35"} == {"s3"}
