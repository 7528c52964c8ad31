"""Policy scan of the rendered manifests with checkov: zero failures; every skip is written on
the resource itself, with a reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.chart.conftest import SCENARIOS, TOOLS, render_text

pytestmark = pytest.mark.chart


def test_checkov_finds_no_failures(tmp_path: Path) -> None:
    for name, (values, operator) in SCENARIOS.items():
        (tmp_path / f"{name}.yaml").write_text(render_text(values, operator=operator))
    result = subprocess.run(
        [
            str(TOOLS / "checkov" / "bin" / "checkov"),
            "--directory",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--quiet",
            "--skip-download",  # offline: no guideline download from the vendor's API
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    summary = reports[0]["summary"]
    assert summary["passed"] > 0
    assert summary["parsing_errors"] == 0
    skipped = [c for r in reports for c in r["results"].get("skipped_checks", [])]
    for check in skipped:
        comment = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(comment.split()) >= 4, f"skip of {check['check_id']} has no reason"


def test_skips_sit_on_resources_with_reasons() -> None:
    """Skips are checkov.io/skip annotations in the templates, each `CHECK_ID=reason`."""
    templates = Path(__file__).resolve().parents[2] / "charts" / "platform"
    lines = [
        line.strip()
        for path in templates.rglob("*.yaml")
        for line in path.read_text().splitlines()
        if "checkov.io/skip" in line
    ]
    assert lines
    for line in lines:
        _, _, value = line.partition(": ")
        check_id, sep, reason = value.partition("=")
        assert sep, line
        assert check_id.startswith("CKV"), line
        assert len(reason.split()) >= 4, line
