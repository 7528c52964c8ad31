"""An MLflow tracking server through its REST API: the reads and the few writes of the lifecycle.

Credentials and TLS settings come from the variables MLflow's own client reads
(MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN;
MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_INSECURE_TLS). A change holds the model's
lifecycle lock (training.registry_lock) and undoes its earlier writes if a later one fails.
"""

import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from training.registry import (
    AlreadyExists,
    ModelVersion,
    NotFound,
    Notice,
    RegisteredModel,
    RegistryError,
    RunData,
)
from training.registry_lock import ModelLock, is_lock_name
from training.registry_sqlite import read_file_uri

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
REQUEST_TIMEOUT_SECONDS = 10.0
PAGE_SIZE = 1000


def ssl_context(env: dict[str, str] | None = None) -> ssl.SSLContext:
    """TLS as MLflow's client configures it from the environment."""
    env = dict(os.environ) if env is None else env
    context = ssl.create_default_context(cafile=env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true", "yes"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _auth_headers() -> dict[str, str]:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if user and password:
        return {
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        }
    if token:
        return {"Authorization": f"Bearer {token}"}
    return {}


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class RestRegistry:
    def __init__(
        self, base_url: str, timeout: float = REQUEST_TIMEOUT_SECONDS, notice: Notice | None = None
    ) -> None:
        self.uri = base_url
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.notice = notice or _to_stderr
        self.headers = {"User-Agent": "mlops-model-platform-lifecycle", **_auth_headers()}
        self.context = ssl_context() if base_url.startswith("https://") else None
        self._locations: dict[tuple[str, str], str] = {}

    # -- HTTP ------------------------------------------------------------------------------------
    def request(
        self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None
    ) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        # The scheme was checked to be http(s) by open_registry.
        request = urllib.request.Request(  # noqa: S310
            f"{self.base_url}{path}{query}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout, context=self.context
            ) as response:
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, method, path) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(
                f"cannot reach the MLflow tracking server at {self.base_url}: {reason}"
            ) from exc

    def call(
        self, method: str, endpoint: str, params: dict[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        raw = self.request(method, f"{API}/{endpoint}", params, body)
        try:
            answer = json.loads(raw or b"{}")
        except ValueError as exc:
            raise RegistryError(f"the MLflow server sent invalid JSON for {endpoint}") from exc
        if not isinstance(answer, dict):
            raise RegistryError(f"the MLflow server sent an unexpected answer for {endpoint}")
        return answer

    def _pages(self, endpoint: str, key: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            page = self.call(
                "GET",
                endpoint,
                {
                    **params,
                    "max_results": str(PAGE_SIZE),
                    **({"page_token": token} if token else {}),
                },
            )
            yield from page.get(key, [])
            token = str(page.get("next_page_token") or "")
            if not token:
                return

    # -- reads -----------------------------------------------------------------------------------
    def model(self, name: str) -> RegisteredModel:
        answer = self.call("GET", "registered-models/get", {"name": name})["registered_model"]
        return RegisteredModel(
            name=str(answer["name"]),
            aliases={str(a["alias"]): str(a["version"]) for a in answer.get("aliases", [])},
            tags={str(t["key"]): str(t.get("value", "")) for t in answer.get("tags", [])},
        )

    def model_names(self) -> list[str]:
        found = self._pages("registered-models/search", "registered_models", {})
        return sorted(str(m["name"]) for m in found if not is_lock_name(str(m["name"])))

    def versions(self, name: str) -> list[ModelVersion]:
        # MLflow's filter language quotes with single quotes and escapes nothing else.
        quoted = name.replace("'", "\\'")
        found = self._pages(
            "model-versions/search", "model_versions", {"filter": f"name='{quoted}'"}
        )
        return sorted(
            (
                ModelVersion(
                    name=name,
                    version=str(v["version"]),
                    created=datetime.fromtimestamp(int(v.get("creation_timestamp", 0)) / 1000, UTC),
                    run_id=v.get("run_id") or None,
                )
                for v in found
                if str(v.get("name")) == name
            ),
            key=lambda v: int(v.version),
        )

    def run(self, run_id: str) -> RunData:
        data = self.call("GET", "runs/get", {"run_id": run_id})["run"].get("data", {})
        return RunData(
            params={str(p["key"]): str(p.get("value", "")) for p in data.get("params", [])},
            metrics={str(m["key"]): float(m.get("value", "nan")) for m in data.get("metrics", [])},
        )

    def version_file(self, name: str, version: str, path: str) -> bytes:
        location = self._locations.get((name, version))
        if location is None:  # a version's files never move: ask once per version
            answer = self.call(
                "GET", "model-versions/get-download-uri", {"name": name, "version": version}
            )
            location = self._locations[name, version] = str(answer.get("artifact_uri", ""))
        location = location.rstrip("/")
        if location.startswith("mlflow-artifacts:"):
            # mlflow-artifacts:/path or mlflow-artifacts://host:port/path: the path is what matters
            base = urllib.parse.urlparse(location).path.strip("/")
            return self.request("GET", f"{ARTIFACTS_API}/{urllib.parse.quote(f'{base}/{path}')}")
        if location.startswith("file://"):
            return read_file_uri(location, path)
        return _download_with_mlflow(f"{location}/{path}")

    # -- writes ----------------------------------------------------------------------------------
    @contextmanager
    def update(self, name: str, purpose: str = "") -> Iterator["RestUpdate"]:
        lock = ModelLock(self, name, notice=self.notice, purpose=purpose)
        with lock:
            update = RestUpdate(self, self.model(name), lock)
            try:
                yield update
            except BaseException:
                update.undo()
                raise


class RestUpdate:
    """Writes made one by one while holding the lock; undo() puts back what was written."""

    def __init__(self, api: RestRegistry, model: RegisteredModel, lock: ModelLock) -> None:
        self.api = api
        self.model = model
        self.lock = lock
        self._undo: list[tuple[str, str, str | None]] = []  # (kind, key, previous value)

    def versions(self) -> set[str]:
        return {v.version for v in self.api.versions(self.model.name)}

    def _write(self, method: str, endpoint: str, body: dict[str, str]) -> None:
        self.lock.check_held()
        self.api.call(method, endpoint, body={"name": self.model.name, **body})

    # Each write is recorded for undo before it is sent: a request can take effect on the server
    # and still fail here (a timeout), and restoring a value that never changed is harmless.
    def set_alias(self, alias: str, version: str) -> None:
        self._undo.append(("alias", alias, self.model.aliases.get(alias)))
        self._write("POST", "registered-models/alias", {"alias": alias, "version": version})

    def delete_alias(self, alias: str) -> None:
        self._undo.append(("alias", alias, self.model.aliases.get(alias)))
        self._write("DELETE", "registered-models/alias", {"alias": alias})

    def set_tag(self, key: str, value: str) -> None:
        self._undo.append(("tag", key, self.model.tags.get(key)))
        self._write("POST", "registered-models/set-tag", {"key": key, "value": value})

    def delete_tag(self, key: str) -> None:
        self._undo.append(("tag", key, self.model.tags.get(key)))
        self._write("DELETE", "registered-models/delete-tag", {"key": key})

    def undo(self) -> None:
        """Best effort: the error that made us undo is the one to report."""
        name = self.model.name
        for kind, key, previous in reversed(self._undo):
            with suppress(RegistryError):
                if kind == "alias" and previous is None:
                    self.api.call(
                        "DELETE", "registered-models/alias", body={"name": name, "alias": key}
                    )
                elif kind == "alias":
                    body = {"name": name, "alias": key, "version": str(previous)}
                    self.api.call("POST", "registered-models/alias", body=body)
                elif previous is None:
                    self.api.call(
                        "DELETE", "registered-models/delete-tag", body={"name": name, "key": key}
                    )
                else:
                    body = {"name": name, "key": key, "value": previous}
                    self.api.call("POST", "registered-models/set-tag", body=body)
        self._undo.clear()


def _http_error(exc: urllib.error.HTTPError, method: str, path: str) -> RegistryError:
    try:
        detail = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        detail = {}
    if not isinstance(detail, dict):
        detail = {}
    code, message = detail.get("error_code"), str(detail.get("message") or exc.reason)
    if code == "RESOURCE_DOES_NOT_EXIST" or (exc.code == 404 and code is None):
        return NotFound(message)
    if code == "RESOURCE_ALREADY_EXISTS":
        return AlreadyExists(message)
    if exc.code in (401, 403):
        return RegistryError(
            f"the MLflow server refused our credentials ({exc.code}): set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) for a user allowed to do this"
        )
    return RegistryError(f"the MLflow server answered {exc.code} to {method} {path}: {message}")


def _download_with_mlflow(uri: str) -> bytes:
    """Artifacts the server does not proxy (s3://, gs://, ...) need MLflow's artifact clients."""
    try:
        import mlflow.artifacts
    except ImportError:
        raise RegistryError(
            f"cannot read {uri}: run the MLflow server with --serve-artifacts, or install the "
            "training tools (make setup) so MLflow's own client can"
        ) from None
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            return Path(local).read_bytes()
        except Exception as exc:  # MLflow's artifact clients share no error type
            raise RegistryError(f"cannot download {uri}: {exc}") from exc
