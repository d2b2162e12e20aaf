"""scripts/chart_diff.py: what it reports between two renders, and what a refactoring may change unreported."""

from __future__ import annotations

import sys

from support.render import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import chart_diff  # noqa: E402

POD = {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}


def test_diff_matches_named_list_items_by_name_and_reports_a_reordering_in_one_line():
    reordered = {
        "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]}]
    }
    assert chart_diff.diff(POD, reordered, "spec") == [
        "~ spec.containers.a.env: order ['X', 'Y'] -> ['Y', 'X']"
    ]


def test_diff_names_each_added_removed_and_changed_value_by_its_path():
    changed = {
        "containers": [{"name": "a", "env": [{"name": "X", "value": "3"}, {"name": "Z", "value": "2"}]}]
    }
    assert chart_diff.diff(POD, changed, "spec") == [
        "~ spec.containers.a.env.X.value: '1' -> '3'",
        "- spec.containers.a.env.Y: {'name': 'Y', 'value': '2'}",
        "+ spec.containers.a.env.Z: {'name': 'Z', 'value': '2'}",
    ]


def test_the_working_tree_renders_like_itself_with_generated_secrets_masked():
    chart = ROOT / chart_diff.CHART
    first, second = chart_diff.render(chart, {}), chart_diff.render(chart, {})
    assert chart_diff.diff(first, second, "") == []
