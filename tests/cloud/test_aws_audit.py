"""The weekly audit's account checks against Cost Explorer and CloudWatch served by moto on
loopback: the spending table, the billing-alarm verdict, and the documented read-only policy
(deploy/aws/audit-policy.json) being enough for both."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud import billing_alarms, spending
from tests.aws_api import AwsApi, aws_api, create_user
from tests.processes import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.aws]

TODAY = dt.date(2026, 11, 30)
POLICY = REPO_ROOT / "deploy" / "aws" / "audit-policy.json"
TOPIC = "arn:aws:sns:us-east-1:123456789012:billing"


def cost_result(period: tuple[str, str], amounts: dict[str, float]) -> dict[str, Any]:
    """A GetCostAndUsage answer grouped by service, as Cost Explorer gives it."""
    groups = [
        {"Keys": [service], "Metrics": {"UnblendedCost": {"Amount": str(v), "Unit": "USD"}}}
        for service, v in amounts.items()
    ]
    return {
        "ResultsByTime": [
            {"TimePeriod": {"Start": period[0], "End": period[1]}, "Total": {}, "Groups": groups}
        ]
    }


PREVIOUS = {"Amazon Elastic Compute Cloud - Compute": 100.0, "Amazon Simple Storage Service": 10.0}
LAST = {
    "Amazon Elastic Compute Cloud - Compute": 80.0,
    "Amazon Simple Storage Service": 15.0,
    "AWS Lambda": 5.0,
    "AWS Key Management Service": 0.001,
}


def queue_costs(api: AwsApi) -> None:
    """The answers to the audit's two queries, in the order it asks: before, then last."""
    results = [
        cost_result(("2026-10-01", "2026-10-31"), PREVIOUS),
        cost_result(("2026-10-31", "2026-11-30"), LAST),
    ]
    answer = httpx.post(
        f"{api.url}/moto-api/static/ce/cost-and-usage-results", json={"results": results}
    )
    assert answer.status_code == 201


def put_alarm(api: AwsApi, name: str, namespace: str, actions: list[str]) -> None:
    api.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace=namespace,
        MetricName="EstimatedCharges" if namespace == "AWS/Billing" else "CPUUtilization",
        Statistic="Maximum",
        Period=21600,
        EvaluationPeriods=1,
        Threshold=50.0,
        ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "Currency", "Value": "USD"}],
        AlarmActions=actions,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsApi]:
    with aws_api(tmp_path_factory.mktemp("aws")) as api:
        yield api


@pytest.fixture
def api(served: AwsApi) -> AwsApi:
    """The module's server, emptied: every test starts from an account with nothing in it."""
    assert httpx.post(f"{served.url}/moto-api/reset").status_code == 200
    return served


def test_spending_by_service_against_the_30_days_before(api: AwsApi) -> None:
    queue_costs(api)
    section = spending.report(api.client("ce"), TODAY)
    assert "Last 30 days (2026-10-31 to 2026-11-29) against the 30 days before" in section
    assert "| Amazon Elastic Compute Cloud - Compute | 100.00 | 80.00 | -20% |" in section
    assert "| Amazon Simple Storage Service | 10.00 | 15.00 | +50% |" in section
    assert "| AWS Lambda | 0.00 | 5.00 | new |" in section
    assert "| **Total** | 110.00 | 100.00 | -9% |" in section
    assert "Key Management" not in section
    assert "1 more services cost under 0.01 in both." in section
    rows = [
        line
        for line in section.splitlines()
        if line.startswith("| Amazon") or line.startswith("| AWS")
    ]
    assert rows[0].startswith("| Amazon Elastic Compute Cloud")  # most expensive first


def test_windows_are_two_30_day_periods_ending_yesterday() -> None:
    previous, last = spending.windows(TODAY)
    assert last == (dt.date(2026, 10, 31), TODAY)
    assert previous == (dt.date(2026, 10, 1), dt.date(2026, 10, 31))


def test_no_billing_alarm_fails(api: AwsApi) -> None:
    put_alarm(api, "api-cpu", "AWS/EC2", [TOPIC])
    section, ok = billing_alarms.report(api.client("cloudwatch"))
    assert not ok
    assert "No billing alarm notifies anyone" in section
    assert "api-cpu" not in section


def test_a_billing_alarm_without_actions_does_not_count(api: AwsApi) -> None:
    put_alarm(api, "billing-silent", "AWS/Billing", [])
    section, ok = billing_alarms.report(api.client("cloudwatch"))
    assert not ok
    assert "`billing-silent`: GreaterThanThreshold 50.0, state" in section
    assert "**notifies nobody**" in section


def test_a_billing_alarm_that_notifies_passes(api: AwsApi) -> None:
    put_alarm(api, "billing-over-50", "AWS/Billing", [TOPIC])
    put_alarm(api, "billing-silent", "AWS/Billing", [])
    section, ok = billing_alarms.report(api.client("cloudwatch"))
    assert ok
    assert f"`billing-over-50`: GreaterThanThreshold 50.0, state OK; {TOPIC}" in section


def run_audit(api: AwsApi, keys: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_ENDPOINT_URL": api.url,
        "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"],
    }
    return subprocess.run(
        [sys.executable, "-m", "cloud.aws_audit", f"--today={TODAY}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_audit_runs_with_the_documented_read_only_policy(tmp_path: Path) -> None:
    # The user (three actions) and one billing alarm are set up before checks start.
    with aws_api(tmp_path, authenticate_after=4) as api:
        # moto names CloudWatch's IAM actions after its endpoint ("monitoring:"), AWS does not.
        policy = POLICY.read_text().replace('"cloudwatch:', '"monitoring:')
        keys = create_user(api, "audit", json.loads(policy))
        put_alarm(api, "billing-over-50", "AWS/Billing", [TOPIC])
        queue_costs(api)
        done = run_audit(api, keys)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "| **Total** | 110.00 | 100.00 | -9% |" in done.stdout
        assert "`billing-over-50`" in done.stdout
        # The same user may not change anything.
        denied = api.client("cloudwatch", **keys)
        with pytest.raises(denied.exceptions.ClientError, match="AccessDenied"):
            denied.delete_alarms(AlarmNames=["billing-over-50"])


def test_the_audit_fails_without_a_billing_alarm_and_says_why(api: AwsApi) -> None:
    queue_costs(api)
    done = run_audit(api, {"aws_access_key_id": "a", "aws_secret_access_key": "b"})
    assert done.returncode == 1
    assert "### AWS spending by service" in done.stdout
    assert "No billing alarm notifies anyone" in done.stdout
