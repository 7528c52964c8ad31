"""A scanner's JSON report as a short Markdown section for the job summary, and a verdict.

    python -m cloud.scan_report trivy trivy.json --fail-on HIGH >>"$GITHUB_STEP_SUMMARY"

Reads the reports of pip-audit (`--format json`), Trivy (`--format json`), checkov
(`--output json`) and Prowler (`--output-formats json-ocsf`). Exits 1 when a finding is at or
above the `--fail-on` severity. pip-audit and checkov (without its paid platform) report no
severity: each of their findings counts as at the threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
# Rows listed in the summary; the full report is the job's artifact.
MAX_ROWS = 25


@dataclass(frozen=True)
class Finding:
    severity: str  # one of SEVERITIES; "" when the scanner has none
    identifier: str
    subject: str
    detail: str


def pip_audit_findings(report: Any) -> list[Finding]:
    """One finding per known vulnerability of a locked package."""
    return [
        Finding(
            "",
            vuln["id"],
            f"{dependency['name']} {dependency['version']}",
            "fixed in " + ", ".join(vuln.get("fix_versions") or ["no release yet"]),
        )
        for dependency in report.get("dependencies", [])
        for vuln in dependency.get("vulns", [])
    ]


def trivy_findings(report: Any) -> list[Finding]:
    """One finding per vulnerable package of the image."""
    return [
        Finding(
            str(vuln.get("Severity", "UNKNOWN")).upper(),
            vuln["VulnerabilityID"],
            f"{vuln['PkgName']} {vuln.get('InstalledVersion', '')}".strip(),
            f"fixed in {vuln['FixedVersion']}" if vuln.get("FixedVersion") else "no fix yet",
        )
        for result in report.get("Results") or []
        for vuln in result.get("Vulnerabilities") or []
    ]


def checkov_findings(report: Any) -> list[Finding]:
    """One finding per failed check; checkov writes one report, or a list of them."""
    reports = report if isinstance(report, list) else [report]
    return [
        Finding("", check["check_id"], check["resource"], check.get("check_name", ""))
        for r in reports
        for check in r.get("results", {}).get("failed_checks", [])
    ]


def prowler_findings(report: Any) -> list[Finding]:
    """One finding per failed, unmuted check result."""
    return [
        Finding(
            str(item.get("severity", "Unknown")).upper(),
            item.get("metadata", {}).get("event_code", ""),
            ", ".join(r.get("uid", "") for r in item.get("resources", [])) or "account",
            item.get("finding_info", {}).get("title", ""),
        )
        for item in report
        if item.get("status_code") == "FAIL" and item.get("status") != "Suppressed"
    ]


PARSERS: dict[str, tuple[str, Callable[[Any], list[Finding]]]] = {
    "pip-audit": ("Python dependencies (pip-audit on uv.lock)", pip_audit_findings),
    "trivy": ("Image vulnerabilities (Trivy)", trivy_findings),
    "checkov": ("Chart policy scan (checkov)", checkov_findings),
    "prowler": ("AWS account (Prowler)", prowler_findings),
}


def at_or_above(finding: Finding, threshold: str) -> bool:
    """Whether a finding counts against the threshold (no severity counts)."""
    if not finding.severity:
        return True
    if finding.severity not in SEVERITIES:
        return False
    return SEVERITIES.index(finding.severity) <= SEVERITIES.index(threshold)


def summary(title: str, findings: Sequence[Finding], threshold: str) -> tuple[str, bool]:
    """The Markdown section and whether it fails the audit."""
    failing = [f for f in findings if at_or_above(f, threshold)]
    lines = [f"### {title}", ""]
    if not findings:
        lines.append("No findings.")
    else:
        counts = Counter(f.severity or "no severity" for f in findings)
        order = [*SEVERITIES, "no severity"]
        lines.append(
            f"{len(findings)} findings: "
            + ", ".join(f"{counts[s]} {s.lower()}" for s in order if counts[s])
            + f". Failing at {threshold} and above: **{len(failing)}**."
        )
        if failing:
            lines += ["", "| Severity | Id | Where | Detail |", "| --- | --- | --- | --- |"]
            ranked = sorted(failing, key=lambda f: SEVERITIES.index(f.severity or "CRITICAL"))
            for f in ranked[:MAX_ROWS]:
                cells = (f.severity or "-", f.identifier, f.subject, f.detail)
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            if len(failing) > MAX_ROWS:
                lines.append(f"\n{len(failing) - MAX_ROWS} more in the report artifact.")
    return "\n".join(lines) + "\n\n", bool(failing)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the section; 1 when a finding is at or above the threshold, 2 on a bad report."""
    parser = argparse.ArgumentParser(prog="python -m cloud.scan_report", description=__doc__)
    parser.add_argument("scanner", choices=sorted(PARSERS))
    parser.add_argument("report", type=Path)
    parser.add_argument("--fail-on", default="HIGH", type=str.upper, choices=SEVERITIES[:4])
    args = parser.parse_args(argv)
    title, parse = PARSERS[args.scanner]
    try:
        findings = parse(json.loads(args.report.read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"### {title}\n\nThe report could not be read: {exc}\n")
        return 2
    section, failed = summary(title, findings, args.fail_on)
    sys.stdout.write(section)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
