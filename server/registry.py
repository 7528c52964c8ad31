"""Resolve `models:/` URIs and fetch model files without the MLflow package.

Two backends, chosen by MLFLOW_TRACKING_URI:
- an MLflow tracking server (http/https): its REST API, with artifacts through its proxy;
- the embedded local store (sqlite:///...): the registry tables read-only, artifacts from disk.
A plain directory path is read as an exported model.
"""

import base64
import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from server.contract import DRIFT_REFERENCE_FILE, EXTRA_FILES_DIR, METADATA_FILE
from server.errors import ModelLoadError
from server.model import ModelFiles, parse_json_file
from server.runtime import RuntimeLoadError, runtime_kind


@dataclass(frozen=True)
class Credentials:
    """How to log in to an MLflow server: basic auth, or a bearer token."""

    username: str | None = None
    password: str | None = None
    token: str | None = None

    def header(self) -> str | None:
        if self.username and self.password:
            pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {pair}"
        if self.token:
            return f"Bearer {self.token}"
        return None


def _model_file(metadata: dict[str, Any]) -> str:
    """The model file's name for the framework the metadata names."""
    try:
        return runtime_kind(metadata.get("framework")).model_file
    except RuntimeLoadError as exc:
        raise ModelLoadError(str(exc)) from exc


class RegistryUnavailable(ModelLoadError):
    """The registry could not be reached (as opposed to answering that a model is missing)."""


@dataclass(frozen=True)
class ModelReference:
    """A parsed MODEL_URI."""

    uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None
    path: Path | None = None

    @property
    def follows_alias(self) -> bool:
        return self.alias is not None


def parse_model_uri(uri: str) -> ModelReference:
    """`models:/<name>@<alias>`, `models:/<name>/<version>`, or a local directory."""
    if uri.startswith("models:/"):
        reference = uri.removeprefix("models:/").strip("/")
        if "@" in reference:
            name, alias = reference.split("@", 1)
            if name and alias:
                return ModelReference(uri, name=name, alias=alias)
        else:
            name, _, version = reference.partition("/")
            if name and version.isdigit():
                return ModelReference(uri, name=name, version=version)
        raise ValueError(f"expected models:/<name>@<alias> or models:/<name>/<version>: {uri!r}")
    path = uri.removeprefix("file://")
    return ModelReference(uri, path=Path(path))


def read_model_dir(path: Path) -> ModelFiles:
    """Read an exported model directory (or an MLflow model directory with extra_files/)."""

    def find(name: str) -> Path | None:
        for candidate in (path / name, path / EXTRA_FILES_DIR / name):
            if candidate.is_file():
                return candidate
        return None

    metadata_path = find(METADATA_FILE)
    if metadata_path is None:
        raise ModelLoadError(f"{path} is not a model directory: it has no {METADATA_FILE}")
    drift_path = find(DRIFT_REFERENCE_FILE)
    try:
        metadata = parse_json_file(metadata_path.read_bytes(), str(metadata_path))
        model_name = _model_file(metadata)
        model_path = find(model_name)
        if model_path is None:
            raise ModelLoadError(f"{path} is not a model directory: it has no {model_name}")
        return ModelFiles(
            model=model_path.read_bytes(),
            metadata=metadata,
            drift_reference=(
                parse_json_file(drift_path.read_bytes(), str(drift_path)) if drift_path else None
            ),
        )
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror}") from exc


class Registry(Protocol):
    def resolve(self, reference: ModelReference) -> str:
        """The version a reference points at now."""
        ...

    def fetch(self, name: str, version: str) -> ModelFiles:
        """The files of one registered version."""
        ...


def registry_for(
    tracking_uri: str | None, timeout: float, credentials: Credentials | None = None
) -> Registry:
    uri = tracking_uri or _default_local_store()
    if uri.startswith(("http://", "https://")):
        return RestRegistry(uri, timeout, credentials or Credentials())
    if uri.startswith("sqlite:///"):
        return SqliteRegistry(Path(uri.removeprefix("sqlite:///")))
    raise ValueError(f"MLFLOW_TRACKING_URI must be http(s):// or sqlite:///, got {uri!r}")


def _default_local_store() -> str:
    """The same embedded store `make train` writes to, at the repository root."""
    return f"sqlite:///{Path(__file__).resolve().parent.parent / '.mlflow' / 'mlflow.db'}"


def _read_artifact_dir(location: str) -> ModelFiles:
    if not location.startswith("file://"):
        raise ModelLoadError(f"cannot read artifacts at {location}")
    return read_model_dir(Path(urllib.parse.unquote(urllib.parse.urlparse(location).path)))


class SqliteRegistry:
    """The local store's registry tables, opened read-only for each call."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _query(self, sql: str, *params: str) -> tuple[Any, ...] | None:
        if not self.db_path.is_file():
            raise RegistryUnavailable(f"no MLflow store at {self.db_path}; run `make train` first")
        try:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5) as db:
                row: tuple[Any, ...] | None = db.execute(sql, params).fetchone()
                return row
        except sqlite3.Error as exc:
            raise RegistryUnavailable(
                f"cannot read the MLflow store {self.db_path}: {exc}"
            ) from exc

    def resolve(self, reference: ModelReference) -> str:
        if reference.alias is None:
            return str(reference.version)
        row = self._query(
            "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
            str(reference.name),
            reference.alias,
        )
        if row is None:
            raise ModelLoadError(f"{reference.uri}: no such model or alias in the registry")
        return str(row[0])

    def fetch(self, name: str, version: str) -> ModelFiles:
        row = self._query(
            "SELECT storage_location, source FROM model_versions WHERE name = ? AND version = ?",
            name,
            version,
        )
        if row is None:
            raise ModelLoadError(f"models:/{name}/{version}: no such version in the registry")
        storage_location, source = row
        location = storage_location or source
        return _read_artifact_dir(str(location))


class RestRegistry:
    """An MLflow tracking server, through its REST API and artifact proxy."""

    def __init__(self, base_url: str, timeout: float, credentials: Credentials) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"User-Agent": "mlops-model-server"}
        authorization = credentials.header()
        if authorization is not None:
            self.headers["Authorization"] = authorization

    def _get(self, path: str, **params: str) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        # base_url was checked to be http(s) by registry_for
        url = f"{self.base_url}{path}{query}"
        request = urllib.request.Request(url, headers=self.headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ModelLoadError(f"not found in the registry: {path} {params}") from exc
            if exc.code in (401, 403):
                raise RegistryUnavailable(
                    f"the MLflow server refused our credentials ({exc.code})"
                ) from exc
            raise RegistryUnavailable(f"the MLflow server answered {exc.code} for {path}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryUnavailable(f"cannot reach MLflow at {self.base_url}: {reason}") from exc

    def _get_json(self, path: str, **params: str) -> dict[str, Any]:
        try:
            value = json.loads(self._get(path, **params))
        except json.JSONDecodeError as exc:
            raise RegistryUnavailable(f"the MLflow server sent invalid JSON for {path}") from exc
        if not isinstance(value, dict):
            raise RegistryUnavailable(f"the MLflow server sent an unexpected answer for {path}")
        return value

    def resolve(self, reference: ModelReference) -> str:
        if reference.alias is None:
            return str(reference.version)
        answer = self._get_json(
            "/api/2.0/mlflow/registered-models/alias",
            name=str(reference.name),
            alias=reference.alias,
        )
        return str(answer["model_version"]["version"])

    def fetch(self, name: str, version: str) -> ModelFiles:
        answer = self._get_json(
            "/api/2.0/mlflow/model-versions/get-download-uri", name=name, version=version
        )
        location = str(answer.get("artifact_uri", ""))
        if location.startswith("file://"):
            return _read_artifact_dir(location)
        if not location.startswith("mlflow-artifacts:"):
            raise ModelLoadError(
                f"models:/{name}/{version} is stored at {location!r}, which only the tracking "
                "server can read: run `mlflow server` with artifact proxying (--serve-artifacts)"
            )
        # mlflow-artifacts:/path or mlflow-artifacts://host:port/path: the path is what matters
        path = urllib.parse.urlparse(location).path.strip("/")

        def download(name_in_model: str) -> bytes:
            quoted = urllib.parse.quote(f"{path}/{name_in_model}")
            return self._get(f"/api/2.0/mlflow-artifacts/artifacts/{quoted}")

        metadata = parse_json_file(download(f"{EXTRA_FILES_DIR}/{METADATA_FILE}"), METADATA_FILE)
        try:
            drift = parse_json_file(
                download(f"{EXTRA_FILES_DIR}/{DRIFT_REFERENCE_FILE}"), DRIFT_REFERENCE_FILE
            )
        except ModelLoadError:
            drift = None  # drift detection is optional; serving is not
        return ModelFiles(
            model=download(_model_file(metadata)), metadata=metadata, drift_reference=drift
        )
