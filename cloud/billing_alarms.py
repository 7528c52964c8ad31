"""Whether the account has a billing alarm: a CloudWatch alarm on AWS/Billing EstimatedCharges.

Billing metrics exist only in us-east-1, so that is where the alarms are looked for. An alarm
counts when its actions are enabled and it notifies someone (at least one alarm action).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BILLING_REGION = "us-east-1"


@dataclass(frozen=True)
class BillingAlarm:
    name: str
    threshold: str
    state: str
    actions: tuple[str, ...]
    enabled: bool

    @property
    def notifies(self) -> bool:
        return self.enabled and bool(self.actions)


def _watches_billing(alarm: dict[str, Any]) -> bool:
    if alarm.get("Namespace") == "AWS/Billing":
        return True
    # Metric-math alarms list their metrics instead.
    return any(
        (q.get("MetricStat") or {}).get("Metric", {}).get("Namespace") == "AWS/Billing"
        for q in alarm.get("Metrics", [])
    )


def billing_alarms(cloudwatch: Any) -> list[BillingAlarm]:
    """Every metric alarm of the account that watches AWS/Billing."""
    found = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
        for alarm in page.get("MetricAlarms", []):
            if not _watches_billing(alarm):
                continue
            threshold = alarm.get("Threshold")
            found.append(
                BillingAlarm(
                    alarm["AlarmName"],
                    f"{alarm.get('ComparisonOperator', '')} {threshold}"
                    if threshold is not None
                    else "metric math",
                    alarm.get("StateValue", "UNKNOWN"),
                    tuple(alarm.get("AlarmActions", [])),
                    bool(alarm.get("ActionsEnabled", True)),
                )
            )
    return sorted(found, key=lambda a: a.name)


def report(cloudwatch: Any) -> tuple[str, bool]:
    """The Markdown section, and whether at least one billing alarm notifies someone."""
    alarms = billing_alarms(cloudwatch)
    lines = [f"### Billing alarms (CloudWatch, {BILLING_REGION})", ""]
    for alarm in alarms:
        who = ", ".join(alarm.actions) if alarm.notifies else "**notifies nobody**"
        lines.append(f"- `{alarm.name}`: {alarm.threshold}, state {alarm.state}; {who}")
    ok = any(a.notifies for a in alarms)
    if not ok:
        lines.append(
            "**No billing alarm notifies anyone.** Create one on AWS/Billing EstimatedCharges "
            "in us-east-1 with an SNS action (docs/aws.md, Billing alarm)."
        )
    return "\n".join(lines) + "\n\n", ok
