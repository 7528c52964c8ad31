"""The local store (`sqlite:///.../mlflow.db`): MLflow's registry tables, read and written directly.

A change is one SQLite transaction begun with BEGIN IMMEDIATE, so two promotions take turns (the
second waits for the first to commit) and a process that dies half-way leaves nothing behind:
SQLite rolls its journal back. Writes touch only the rows MLflow's own client would write for the
same call (an alias row, a registered-model tag row).
"""

import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.errors import TrainingError
from training.registry import (
    ModelVersion,
    NotFound,
    RegisteredModel,
    RegistryError,
    RunData,
)

BUSY_TIMEOUT_SECONDS = 30.0  # how long a writer waits for another's transaction to end
# MLflow keeps a deleted version's row with the stage 'Deleted_Internal' and leaves such rows out
# of its queries; so do ours.


def read_file_uri(location: str, path: str) -> bytes:
    """A file under a file:// artifact location."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme != "file":
        raise RegistryError(f"cannot read artifacts at {location}")
    target = Path(urllib.parse.unquote(parsed.path)) / path
    try:
        return target.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"{target} does not exist") from exc
    except OSError as exc:
        raise RegistryError(f"cannot read {target}: {exc.strerror}") from exc


class SqliteRegistry:
    def __init__(self, db_path: Path, uri: str | None = None) -> None:
        self.db_path = db_path
        self.uri = uri or f"sqlite:///{db_path}"

    def _connect(self, *, write: bool = False) -> sqlite3.Connection:
        if not self.db_path.is_file():
            raise TrainingError(f"no MLflow store at {self.db_path}; run make train first")
        mode = "rw" if write else "ro"
        location = urllib.parse.quote(str(self.db_path))
        try:
            # isolation_level=None: no implicit transactions; update() begins its own.
            return sqlite3.connect(
                f"file:{location}?mode={mode}",
                uri=True,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open the MLflow store {self.db_path}: {exc}") from exc

    def _rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        try:
            with closing(self._connect()) as db:
                return db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot read the MLflow store {self.db_path}: {exc}") from exc

    def model(self, name: str) -> RegisteredModel:
        try:
            with closing(self._connect()) as db:
                return _read_model(db, name)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot read the MLflow store {self.db_path}: {exc}") from exc

    def model_names(self) -> list[str]:
        return [str(row[0]) for row in self._rows("SELECT name FROM registered_models ORDER BY 1")]

    def versions(self, name: str) -> list[ModelVersion]:
        rows = self._rows(
            "SELECT version, creation_time, run_id FROM model_versions "
            "WHERE name = ? AND COALESCE(current_stage, '') != 'Deleted_Internal' ORDER BY version",
            name,
        )
        return [
            ModelVersion(
                name=name,
                version=str(version),
                created=datetime.fromtimestamp((created or 0) / 1000, tz=UTC),
                run_id=run_id or None,
            )
            for version, created, run_id in rows
        ]

    def run(self, run_id: str) -> RunData:
        metrics = self._rows(
            "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", run_id
        )
        params = self._rows("SELECT key, value FROM params WHERE run_uuid = ?", run_id)
        return RunData(
            params={str(k): str(v) for k, v in params},
            metrics={str(k): float("nan") if nan else float(v) for k, v, nan in metrics},
        )

    def version_file(self, name: str, version: str, path: str) -> bytes:
        rows = self._rows(
            "SELECT storage_location, source FROM model_versions "
            "WHERE name = ? AND version = ? AND COALESCE(current_stage, '') != 'Deleted_Internal'",
            name,
            int(version),
        )
        if not rows:
            raise NotFound(f"{name} has no version {version}")
        storage_location, source = rows[0]
        return read_file_uri(str(storage_location or source), path)

    @contextmanager
    def update(self, name: str, purpose: str = "") -> Iterator["SqliteUpdate"]:
        try:
            db = self._connect(write=True)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot write the MLflow store {self.db_path}: {exc}") from exc
        with closing(db):
            try:
                db.execute("BEGIN IMMEDIATE")
                yield SqliteUpdate(db, _read_model(db, name))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                db.rollback()
                raise RegistryError(f"cannot write the MLflow store {self.db_path}: {exc}") from exc
            except BaseException:
                db.rollback()
                raise


def _read_model(db: sqlite3.Connection, name: str) -> RegisteredModel:
    if db.execute("SELECT 1 FROM registered_models WHERE name = ?", (name,)).fetchone() is None:
        raise NotFound(f"no registered model {name!r}")
    aliases = db.execute(
        "SELECT alias, version FROM registered_model_aliases WHERE name = ?", (name,)
    ).fetchall()
    tags = db.execute("SELECT key, value FROM registered_model_tags WHERE name = ?", (name,))
    return RegisteredModel(
        name=name,
        aliases={str(alias): str(version) for alias, version in aliases},
        tags={str(key): str(value) for key, value in tags.fetchall()},
    )


class SqliteUpdate:
    """Writes inside the caller's transaction; update() commits or rolls them back."""

    def __init__(self, db: sqlite3.Connection, model: RegisteredModel) -> None:
        self.db = db
        self.model = model

    def versions(self) -> set[str]:
        rows = self.db.execute(
            "SELECT version FROM model_versions "
            "WHERE name = ? AND COALESCE(current_stage, '') != 'Deleted_Internal'",
            (self.model.name,),
        )
        return {str(row[0]) for row in rows.fetchall()}

    def set_alias(self, alias: str, version: str) -> None:
        if version not in self.versions():
            raise NotFound(f"{self.model.name} has no version {version}")
        self.db.execute(
            "INSERT OR REPLACE INTO registered_model_aliases (name, alias, version) VALUES (?, ?, ?)",
            (self.model.name, alias, int(version)),
        )

    def delete_alias(self, alias: str) -> None:
        self.db.execute(
            "DELETE FROM registered_model_aliases WHERE name = ? AND alias = ?",
            (self.model.name, alias),
        )

    def set_tag(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO registered_model_tags (key, value, name) VALUES (?, ?, ?)",
            (key, value, self.model.name),
        )

    def delete_tag(self, key: str) -> None:
        self.db.execute(
            "DELETE FROM registered_model_tags WHERE name = ? AND key = ?", (self.model.name, key)
        )
