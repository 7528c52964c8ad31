"""The weekly audit's account checks: spending by service, and that a billing alarm exists.

    python -m cloud.aws_audit >>"$GITHUB_STEP_SUMMARY"

Credentials come from the environment (the workflow's OIDC role). Read-only: Cost Explorer
GetCostAndUsage and CloudWatch DescribeAlarms. Exits 1 when no billing alarm notifies anyone,
2 when the account cannot be read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence

from cloud import billing_alarms, spending


def main(argv: Sequence[str] | None = None) -> int:
    """Print both sections; the exit code says whether the alarm check passed."""
    parser = argparse.ArgumentParser(prog="python -m cloud.aws_audit", description=__doc__)
    parser.add_argument(
        "--today", type=dt.date.fromisoformat, default=dt.datetime.now(dt.UTC).date(),
        help="end of the last window (default: today, UTC)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    import boto3  # the aws dependency group
    from botocore.exceptions import BotoCoreError, ClientError

    region = billing_alarms.BILLING_REGION  # Cost Explorer and billing metrics live there
    try:
        costs = spending.report(boto3.client("ce", region_name=region), args.today)
        alarms, ok = billing_alarms.report(boto3.client("cloudwatch", region_name=region))
    except (BotoCoreError, ClientError) as exc:
        print(f"### AWS account checks\n\nThe account could not be read: {exc}\n")
        return 2
    sys.stdout.write(costs + alarms)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
