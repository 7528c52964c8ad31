"""AWS APIs on loopback for tests: moto's server mode, as MLflow's own tests use it.

With `authenticate_after=N` the server checks every request after the first N against its own
IAM: the signature must come from an access key it issued and the key's policies must allow
the action, as on AWS. With `record=True` it writes every request it gets to a file, so a test
can tell which credentials (if any) each request was signed with.
"""

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.processes import free_port, wait_for

REGION = "us-east-1"
# Requests before IAM checks start are signed with these; moto accepts any key until then.
BOOTSTRAP_KEYS = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def presigned(self) -> bool:
        """Signed in its URL: sent by whoever was handed a presigned URL, not by its signer."""
        return "X-Amz-Signature=" in self.url

    @property
    def access_key_id(self) -> str | None:
        """The access key id the request was signed with (SigV4 header or presigned URL)."""
        header = self.headers.get("Authorization", "")
        found = _CREDENTIAL.search(header) or re.search(r"X-Amz-Credential=([^%/&]+)", self.url)
        return found.group(1) if found else None


@dataclass(frozen=True)
class AwsApi:
    url: str
    log_path: Path
    recording_path: Path

    def client(self, service: str, **keys: str) -> Any:
        """A boto3 client for `service` on this server (bootstrap keys unless given)."""
        return boto3.client(
            service, endpoint_url=self.url, region_name=REGION, **(keys or BOOTSTRAP_KEYS)
        )

    def requests(self) -> list[RecordedRequest]:
        """Every request recorded so far (record=True), oldest first."""
        recorded = []
        for line in self.recording_path.read_text().splitlines():
            entry = json.loads(line)
            body = entry.get("body") or ""
            raw = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
            recorded.append(RecordedRequest(entry["method"], entry["url"], entry["headers"], raw))
        return recorded

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def aws_api(
    root: Path, authenticate_after: int | None = None, record: bool = False
) -> Iterator[AwsApi]:
    """Run `moto_server` on a free loopback port with its files in `root`; stop it on exit."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    recording = root / "requests.jsonl"
    recording.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    if authenticate_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(authenticate_after)
    if record:
        env |= {"MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)}
    log_path = root / f"moto-{port}.log"
    moto = Path(sys.executable).with_name("moto_server")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = AwsApi(f"http://127.0.0.1:{port}", log_path, recording)
    try:
        try:
            wait_for(f"{api.url}/moto-api/", timeout=120, status=None)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nmoto log:\n{api.log()}") from None
        yield api
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def create_user(api: AwsApi, name: str, policy: dict[str, Any]) -> dict[str, str]:
    """An IAM user with `policy` inline; its access key as boto3 client keyword arguments.

    Three API actions: count them in `authenticate_after`.
    """
    iam = api.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }
