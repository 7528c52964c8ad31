"""cloud.scan_report: each scanner's JSON report, in the shape the pinned versions write it,
becomes a summary section, and the verdict follows the configured severity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud.scan_report import main

PIP_AUDIT = {
    "dependencies": [
        {"name": "numpy", "version": "2.3.0", "vulns": []},
        {
            "name": "urllib3",
            "version": "2.4.0",
            "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["2.5.0"], "aliases": ["CVE-2025-1"]}],
        },
    ],
    "fixes": [],
}
TRIVY = {
    "ArtifactName": "ghcr.io/owner/mlops-model-platform:abc",
    "Results": [
        {"Target": "debian 12", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2026-1", "PkgName": "libssl3", "InstalledVersion": "3.0.1",
             "FixedVersion": "3.0.2", "Severity": "HIGH"},
            {"VulnerabilityID": "CVE-2026-2", "PkgName": "zlib1g", "InstalledVersion": "1.2",
             "Severity": "LOW"},
        ]},
        {"Target": "Python", "Vulnerabilities": None},
    ],
}  # fmt: skip
CHECKOV = [{"check_type": "kubernetes", "results": {"failed_checks": [], "passed_checks": [{}]}}]
PROWLER = [
    {"status_code": "FAIL", "status": "New", "severity": "Critical",
     "metadata": {"event_code": "iam_root_mfa_enabled"},
     "finding_info": {"title": "Root account has MFA"}, "resources": [{"uid": "arn:aws:iam::1:root"}]},
    {"status_code": "FAIL", "status": "Suppressed", "severity": "High",
     "metadata": {"event_code": "s3_bucket_public"}, "finding_info": {"title": "muted"}, "resources": []},
    {"status_code": "PASS", "status": "New", "severity": "High",
     "metadata": {"event_code": "cloudtrail_enabled"}, "finding_info": {"title": "ok"}, "resources": []},
    {"status_code": "FAIL", "status": "New", "severity": "Medium",
     "metadata": {"event_code": "ec2_ebs_default_encryption"}, "finding_info": {"title": "EBS"},
     "resources": [{"uid": "eu-west-1"}]},
]  # fmt: skip


def run(tmp_path: Path, scanner: str, report: object, *args: str) -> tuple[int, str]:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    code = main([scanner, str(path), *args])
    return code, path.read_text()


def test_pip_audit_fails_on_any_known_vulnerability(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(tmp_path, "pip-audit", PIP_AUDIT, "--fail-on", "critical")
    out = capsys.readouterr().out
    assert code == 1  # pip-audit gives no severity: every finding counts
    assert out.startswith("### Python dependencies (pip-audit on uv.lock)\n")
    assert "| - | GHSA-xxxx | urllib3 2.4.0 | fixed in 2.5.0 |" in out


def test_trivy_fails_only_at_or_above_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "trivy", TRIVY, "--fail-on", "HIGH")[0] == 1
    out = capsys.readouterr().out
    assert "2 findings: 1 high, 1 low. Failing at HIGH and above: **1**." in out
    assert "| HIGH | CVE-2026-1 | libssl3 3.0.1 | fixed in 3.0.2 |" in out
    assert "CVE-2026-2" not in out
    assert run(tmp_path, "trivy", TRIVY, "--fail-on", "CRITICAL")[0] == 0


def test_prowler_counts_failed_unmuted_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "prowler", PROWLER, "--fail-on", "high")[0] == 1
    out = capsys.readouterr().out
    assert "2 findings: 1 critical, 1 medium." in out
    assert "| CRITICAL | iam_root_mfa_enabled | arn:aws:iam::1:root | Root account has MFA |" in out
    assert "s3_bucket_public" not in out
    assert "cloudtrail_enabled" not in out


def test_a_clean_report_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "checkov", CHECKOV)[0] == 0
    assert "### Chart policy scan (checkov)\n\nNo findings." in capsys.readouterr().out


def test_an_unreadable_report_is_an_error_not_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing.json"
    assert main(["trivy", str(path)]) == 2
    assert "could not be read" in capsys.readouterr().out
