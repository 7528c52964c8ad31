"""Create or update the Kubernetes Secrets the chart refers to from AWS SSM Parameter Store, for
clusters without the External Secrets Operator.

The list of Secrets is the chart's own `externalSecrets.secrets` (read from the values files
given), so the operator and this command create the same Secrets from the same parameters.
The Secrets go to `kubectl apply --server-side` on stdin, never through a file or an argument,
and no value is printed: kubectl's answers are passed on with every value masked. Server-side
apply with one field manager makes a rerun with unchanged parameters a no-op.

    python -m cloud.ssm_secrets -f charts/platform/values-production.yaml -n platform
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FIELD_MANAGER = "platform-ssm-secrets"
# GetParameters takes at most ten names per call.
BATCH = 10
MASK = "[value hidden]"


class SecretsError(Exception):
    """A problem the user can fix; its message never contains a parameter's value."""


@dataclass(frozen=True)
class SecretKey:
    secret_key: str
    remote_key: str
    property: str | None = None


@dataclass(frozen=True)
class SecretSpec:
    name: str
    keys: tuple[SecretKey, ...]


def load_specs(values_files: Sequence[Path]) -> list[SecretSpec]:
    """The Secrets listed under externalSecrets.secrets; a later file's list replaces an earlier one, as in Helm."""
    listed: list[Any] = []
    for path in values_files:
        values = yaml.safe_load(path.read_text()) or {}
        section = values.get("externalSecrets") or {}
        if "secrets" in section:
            listed = section["secrets"] or []
    specs = []
    for entry in listed:
        keys = tuple(
            SecretKey(d["secretKey"], d["remoteKey"], d.get("property")) for d in entry["data"]
        )
        specs.append(SecretSpec(entry["name"], keys))
    if not specs:
        raise SecretsError("no externalSecrets.secrets in the values files given")
    return specs


def fetch_parameters(ssm: Any, names: Iterable[str]) -> dict[str, str]:
    """The decrypted values of the named parameters; a missing one is an error naming it."""
    wanted = sorted(set(names))
    found: dict[str, str] = {}
    missing: list[str] = []
    for start in range(0, len(wanted), BATCH):
        answer = ssm.get_parameters(Names=wanted[start : start + BATCH], WithDecryption=True)
        found |= {p["Name"]: p["Value"] for p in answer["Parameters"]}
        missing += answer.get("InvalidParameters", [])
    if missing:
        raise SecretsError(f"parameters not found (or not readable): {', '.join(sorted(missing))}")
    return found


def _value(key: SecretKey, parameters: Mapping[str, str]) -> str:
    raw = parameters[key.remote_key]
    if key.property is None:
        return raw
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict) or key.property not in document:
        raise SecretsError(f"{key.remote_key} is not a JSON object with the field {key.property!r}")
    return str(document[key.property])


def secret_manifests(
    specs: Sequence[SecretSpec], parameters: Mapping[str, str], namespace: str
) -> list[dict[str, Any]]:
    """One Secret per spec, keys sorted: the same parameters always give the same manifests."""
    manifests = []
    for spec in specs:
        data = {
            key.secret_key: base64.b64encode(_value(key, parameters).encode()).decode()
            for key in spec.keys
        }
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": spec.name,
                    "namespace": namespace,
                    "labels": {
                        "app.kubernetes.io/managed-by": FIELD_MANAGER,
                        "app.kubernetes.io/part-of": "platform",
                    },
                },
                "type": "Opaque",
                "data": dict(sorted(data.items())),
            }
        )
    return manifests


def apply_command(kubectl: str, namespace: str, context: str | None, dry_run: bool) -> list[str]:
    """kubectl server-side apply of a manifest on stdin."""
    command = [kubectl, "apply", "--server-side", f"--field-manager={FIELD_MANAGER}"]
    # The API server validates what it is sent; kubectl's own check would first download the
    # cluster's whole OpenAPI document to validate a Secret built (and schema-tested) here.
    command.append("--validate=false")
    # Take over the keys from whoever created the Secret before (kubectl create, a person).
    command += ["--force-conflicts", "--namespace", namespace, "--filename", "-"]
    if context:
        command += ["--context", context]
    if dry_run:
        command.append("--dry-run=server")
    return command


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value, plain or base64-encoded, replaced."""
    for value in sorted(set(secrets), key=len, reverse=True):
        if not value:
            continue
        text = text.replace(value, MASK)
    return text


def secret_strings(manifests: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every value as it could appear in kubectl's output: base64 and decoded."""
    encoded = [v for m in manifests for v in m["data"].values()]
    return encoded + [base64.b64decode(v).decode(errors="replace") for v in encoded]


def apply(manifests: Sequence[Mapping[str, Any]], command: Sequence[str]) -> int:
    """Run kubectl with the manifests on stdin; print its output with the values masked."""
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
    done = subprocess.run(command, input=document, capture_output=True, text=True, check=False)
    hidden = secret_strings(manifests)
    sys.stdout.write(mask(done.stdout, hidden))
    sys.stderr.write(mask(done.stderr, hidden))
    return done.returncode


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cloud.ssm_secrets",
        description="Apply the chart's externalSecrets.secrets from SSM Parameter Store "
        "as Kubernetes Secrets (kubectl server-side apply; no value is ever printed).",
    )
    parser.add_argument(
        "-f", "--values", type=Path, action="append", required=True,
        help="chart values file with externalSecrets.secrets (repeatable; later files win)",
    )  # fmt: skip
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument("--kubectl", default="kubectl", help="kubectl to run (default: on PATH)")
    parser.add_argument(
        "--dry-run", action="store_true", help="let the API server check, change nothing"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Read the parameters, apply the Secrets; 0 on success, 1 on a failed apply, 2 on bad input."""
    args = parse_args(argv)
    import boto3  # the aws dependency group; imported here so --help works without it
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        specs = load_specs(args.values)
        ssm = boto3.client("ssm", region_name=args.region)
        remote = [key.remote_key for spec in specs for key in spec.keys]
        manifests = secret_manifests(specs, fetch_parameters(ssm, remote), args.namespace)
    except (SecretsError, OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        # boto3's messages name the call and the error code, never a parameter's value.
        print(f"error: reading SSM parameters: {exc}", file=sys.stderr)
        return 2
    for spec in specs:
        keys = ", ".join(f"{k.secret_key} <- {k.remote_key}" for k in spec.keys)
        print(f"{spec.name}: {keys}", file=sys.stderr)
    return apply(manifests, apply_command(args.kubectl, args.namespace, args.context, args.dry_run))


if __name__ == "__main__":
    sys.exit(main())
