"""Create or update the read-only MLflow user that the inference API signs in as.

Runs in the MLflow image as a Helm post-install/post-upgrade hook Job, and by hand as
`make mlflow-reader`. With an admin's credentials it makes sure that the reader user exists, is
not an admin, has the password from its Secret, belongs to no role but its own, and holds exactly
READ on the registered models the API serves and on the experiments that hold their versions'
files (the artifact proxy checks the experiment), and nothing else. Each step reads before it
writes, so a second run changes nothing. Passwords are never printed, nor are MLflow's error
bodies: a refused user creation echoes the stored password hash.

Standard library only, so that it runs in any image with a Python 3.9 or newer.

Environment (each NAME can instead be given as NAME_FILE, the path of a file holding it):
  MLFLOW_TRACKING_URI                       the MLflow server
  MLFLOW_TRACKING_USERNAME, ..._PASSWORD    an MLflow admin
  MLFLOW_READER_USERNAME, ..._PASSWORD      the read-only user
  MLFLOW_READER_MODELS                      registered model names, comma-separated
  MLFLOW_WAIT_SECONDS                       how long to wait for the server (default 300)
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

READ = "READ"
# Proxied artifact paths start with the experiment id, after an optional workspace prefix.
_EXPERIMENT_IN_PATH = re.compile(r"^(?:workspaces/[^/]+/)?(\d+)(?:/|$)")
_MAX_PAGES = 50


class SetupError(Exception):
    """Something the operator must fix; the message says what."""


def setting(name: str, default: str | None = None) -> str:
    """NAME from the environment, or the contents of the file NAME_FILE names."""
    value = os.environ.get(name, "")
    path = os.environ.get(f"{name}_FILE", "")
    if not value and path:
        try:
            with open(path, encoding="utf-8") as file:
                value = file.read().strip()
        except OSError as exc:
            raise SetupError(f"cannot read {name}_FILE ({path}): {exc.strerror}") from None
    if value:
        return value
    if default is not None:
        return default
    raise SetupError(f"{name} (or {name}_FILE) is not set")


class Mlflow:
    """MLflow's REST API as one user; answers are JSON, errors name only MLflow's error code."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer); a status other than 200 or those in `allow` raises SetupError."""
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers=self.headers, method=method)  # noqa: S310 - the operator's MLflow URL
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SetupError(f"{method} {path}: cannot reach {self.url}: {reason}") from None
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status != 200 and status not in allow:
            words = [method, path, "answered", str(status), str(answer.get("error_code", ""))]
            if status in (401, 403):
                words.append("(are these an admin's credentials?)")
            raise SetupError(" ".join(w for w in words if w))
        return status, answer


def wait_until_up(url: str, seconds: float) -> None:
    """Poll /health (no credentials needed) until it answers 200."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SetupError(f"MLflow at {url} did not answer /health within {seconds:g} seconds")
        time.sleep(2)


def ensure_user(admin: Mlflow, reader: Mlflow, username: str, password: str) -> int:
    """Create the reader, or bring its password and admin flag in line; return its user id."""
    status, answer = admin.call(
        "GET", "/api/2.0/mlflow/users/get", {"username": username}, allow=(404,)
    )
    if status == 404:
        _, answer = admin.call(
            "POST",
            "/api/2.0/mlflow/users/create",
            body={"username": username, "password": password},
        )
        print(f"created user {username}")
        return int(answer["user"]["id"])
    user = answer["user"]
    if user.get("is_admin"):
        admin.call(
            "PATCH",
            "/api/2.0/mlflow/users/update-admin",
            body={"username": username, "is_admin": False},
        )
        print(f"user {username} is no longer an admin")
    signed_in, _ = reader.call("GET", "/api/2.0/mlflow/users/current", allow=(401,))
    if signed_in == 200:
        print(f"user {username} exists; its password is the one in its Secret")
    else:
        admin.call(
            "PATCH",
            "/api/2.0/mlflow/users/update-password",
            body={"username": username, "password": password},
        )
        print(f"user {username}: password set from its Secret")
    return int(user["id"])


def experiment_of(artifact_uri: str) -> str | None:
    """The experiment id a proxied artifact URI (`mlflow-artifacts:/1/models/...`) lies in."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme != "mlflow-artifacts":
        return None
    match = _EXPERIMENT_IN_PATH.match(parsed.path.lstrip("/"))
    return match.group(1) if match else None


def model_experiments(admin: Mlflow, model: str) -> set[str]:
    """Experiments holding the files of the model's versions, and the one named after it."""
    experiments = set()
    token = ""
    for _ in range(_MAX_PAGES):
        params = {"filter": f"name = '{model}'", "max_results": "200"}
        if token:
            params["page_token"] = token
        _, answer = admin.call("GET", "/api/2.0/mlflow/model-versions/search", params)
        for version in answer.get("model_versions", []):
            _, location = admin.call(
                "GET",
                "/api/2.0/mlflow/model-versions/get-download-uri",
                {"name": model, "version": str(version["version"])},
            )
            experiment = experiment_of(str(location.get("artifact_uri", "")))
            if experiment is not None:
                experiments.add(experiment)
        token = answer.get("next_page_token", "")
        if not token:
            break
    status, answer = admin.call(
        "GET", "/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": model}, allow=(404,)
    )
    if status == 200:
        experiments.add(str(answer["experiment"]["experiment_id"]))
    return experiments


def ensure_roles(admin: Mlflow, username: str, user_id: int) -> None:
    """Unassign every role but the user's own (a role could carry write permissions)."""
    own = f"__user_{user_id}__"
    _, answer = admin.call("GET", "/api/3.0/mlflow/users/roles/list", {"username": username})
    for role in answer.get("roles", []):
        if role.get("name") != own:
            admin.call(
                "DELETE",
                "/api/3.0/mlflow/roles/unassign",
                body={"username": username, "role_id": role["id"]},
            )
            print(f"user {username}: removed from role {role.get('name')}")


def ensure_grants(admin: Mlflow, username: str, user_id: int, wanted: set[tuple[str, str]]) -> None:
    """Exactly READ on `wanted` (resource type, id) pairs: grant what is missing, revoke the rest."""
    own = f"__user_{user_id}__"
    _, answer = admin.call("GET", "/api/3.0/mlflow/users/permissions/list", {"username": username})
    held: dict[tuple[str, str], str] = {
        (str(row["resource_type"]), str(row["resource_pattern"])): str(row["permission"])
        for row in answer.get("permissions", [])
        if row.get("role_name") == own
    }
    for key, permission in sorted(held.items()):
        if key not in wanted or permission != READ:
            admin.call(
                "POST",
                "/api/3.0/mlflow/users/permissions/revoke",
                body={"username": username, "resource_type": key[0], "resource_id": key[1]},
            )
            print(f"user {username}: revoked {permission} on {key[0]} {key[1]}")
    for key in sorted(wanted):
        if held.get(key) == READ:
            print(f"user {username}: READ on {key[0]} {key[1]} (already)")
            continue
        admin.call(
            "POST",
            "/api/3.0/mlflow/users/permissions/grant",
            body={
                "username": username,
                "resource_type": key[0],
                "resource_id": key[1],
                "permission": READ,
            },
        )
        print(f"user {username}: granted READ on {key[0]} {key[1]}")


def run() -> None:
    url = setting("MLFLOW_TRACKING_URI")
    admin_name = setting("MLFLOW_TRACKING_USERNAME")
    admin_password = setting("MLFLOW_TRACKING_PASSWORD")
    username = setting("MLFLOW_READER_USERNAME")
    password = setting("MLFLOW_READER_PASSWORD")
    models = [m.strip() for m in setting("MLFLOW_READER_MODELS").split(",") if m.strip()]
    if username == admin_name:
        raise SetupError(
            f"the reader and the admin are the same user ({username}): "
            "give the reader a Secret of its own"
        )
    if password == admin_password:
        raise SetupError("the reader's password is the admin's: give the reader its own password")
    if not models:
        raise SetupError("MLFLOW_READER_MODELS names no registered model")
    wait_until_up(url, float(setting("MLFLOW_WAIT_SECONDS", "300")))
    admin = Mlflow(url, admin_name, admin_password)
    _, me = admin.call("GET", "/api/2.0/mlflow/users/get", {"username": admin_name})
    if not me["user"].get("is_admin"):
        raise SetupError(f"{admin_name} is not an MLflow admin")
    user_id = ensure_user(admin, Mlflow(url, username, password), username, password)
    ensure_roles(admin, username, user_id)
    wanted = {("registered_model", model) for model in models}
    for model in models:
        wanted |= {("experiment", e) for e in model_experiments(admin, model)}
    ensure_grants(admin, username, user_id, wanted)
    print(f"user {username}: READ on {len(wanted)} resources, and no other grant or role")


def main() -> int:
    try:
        run()
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
