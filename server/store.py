"""The prediction store: every recorded prediction and every piece of feedback, shared by replicas.

Two backends behind one small class, chosen by the URI:
- `sqlite:///path/predictions.db`: embedded, no server; replicas on one machine share the file
  (write-ahead log, so readers never wait for the writer);
- `postgresql://user:password@host:port/database`: the shared store in a cluster, through pg8000
  (pure Python, about 1 MB installed, no libpq).

The SQL is the same for both but for placeholders and the bulk insert. Each caller owns its
connections (the recorder's writer thread has one, the feedback and quality readers another):
a DB-API connection must not be shared between threads.
"""

import sqlite3
import ssl
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from server.quality import ErrorSums

# One recorded row: request id, row index, unix time, model name, version, variant, features
# (float64 bytes), predicted class or value, and the shadow challenger's version and answer.
PredictionRow = tuple[
    str, int, float, str, str, str, bytes, str | None, float | None, str | None, str | None,
    float | None,
]  # fmt: skip
# The columns every recorded row fills, in this order, then the optional ones a group of rows
# fills (its shape): a column a row leaves empty is not sent at all, so it costs the writer no
# work per row (binding a None costs Python's sqlite3 more than binding a number).
REQUIRED_COLUMNS = (
    "request_id", "row_index", "ts", "model_name", "model_version", "variant", "features",
)  # fmt: skip
OPTIONAL_COLUMNS = ("prediction", "value", "shadow_version", "shadow_prediction", "shadow_value")
Shape = tuple[str, ...]
_PG_TYPES = {
    "request_id": "text", "row_index": "int", "ts": "float8", "model_name": "text",
    "model_version": "text", "variant": "text", "features": "bytea", "prediction": "text",
    "value": "float8", "shadow_version": "text", "shadow_prediction": "text",
    "shadow_value": "float8",
}  # fmt: skip
# Feedback: request id, row index, true label (classifiers) or value (regressors), unix time.
FeedbackRow = tuple[str, int, str | None, float | None, float]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS predictions (
        request_id TEXT NOT NULL,
        row_index INTEGER NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        model_name TEXT NOT NULL,
        model_version TEXT NOT NULL,
        variant TEXT NOT NULL,
        features {blob} NOT NULL,
        prediction TEXT,
        value DOUBLE PRECISION,
        shadow_version TEXT,
        shadow_prediction TEXT,
        shadow_value DOUBLE PRECISION,
        PRIMARY KEY (request_id, row_index))""",
    "CREATE INDEX IF NOT EXISTS predictions_by_time ON predictions (model_name, ts)",
    """CREATE TABLE IF NOT EXISTS feedback (
        request_id TEXT NOT NULL,
        row_index INTEGER NOT NULL,
        label TEXT,
        value DOUBLE PRECISION,
        ts DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (request_id, row_index))""",
    "CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback (ts)",
)
_LABELLED = """FROM predictions p JOIN feedback f
    ON f.request_id = p.request_id AND f.row_index = p.row_index"""


class StoreError(Exception):
    """The store cannot be opened, reached or written; the message is safe to log."""


class Connection(Protocol):
    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class StoredPrediction:
    """What feedback needs to know about a recorded prediction."""

    model_name: str
    is_classifier: bool


@dataclass(frozen=True)
class LabelledRow:
    """A labelled production prediction, as retraining reads it."""

    ts: float
    model_version: str
    features: bytes
    label: str | None
    value: float | None


@dataclass(frozen=True)
class PairedRow:
    """One labelled row scored by both the champion and the shadow challenger."""

    champion: str | float
    challenger: str | float
    truth: str | float


def redact(uri: str) -> str:
    """The URI without its password, for logs, messages and run provenance."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class PredictionStore:
    """Opens connections to one store and runs the few statements the loop needs."""

    def __init__(self, uri: str, connect_timeout: float = 10.0) -> None:
        self.uri = uri
        self.connect_timeout = connect_timeout
        self._inserts: dict[Shape, str] = {}
        if uri.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self.path = Path(uri.removeprefix("sqlite:///"))
        elif uri.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self._pg = _postgres_options(uri, connect_timeout)
        else:
            raise StoreError(
                f"a prediction store URI is sqlite:///path or postgresql://..., got {redact(uri)!r}"
            )

    def __repr__(self) -> str:
        return f"PredictionStore({redact(self.uri)!r})"

    def connect(self) -> Connection:
        """A new connection, with the schema in place."""
        try:
            if self.dialect == "sqlite":
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection: Connection = sqlite3.connect(
                    self.path, timeout=self.connect_timeout, check_same_thread=False
                )
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            else:
                import pg8000.dbapi

                connection = pg8000.dbapi.connect(**self._pg)
            self._create_schema(connection)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {redact(self.uri)}: {exc}") from exc
        except Exception as exc:  # pg8000's errors share no base with the standard library's
            raise StoreError(f"cannot open {redact(self.uri)}: {_message(exc)}") from exc
        return connection

    def _create_schema(self, connection: Connection) -> None:
        blob = "BLOB" if self.dialect == "sqlite" else "BYTEA"
        cursor = connection.cursor()
        for statement in _SCHEMA:
            try:
                cursor.execute(statement.format(blob=blob))
            except Exception:
                # Two replicas creating the schema at once: PostgreSQL's IF NOT EXISTS can still
                # collide on the catalog; the other one won, which is all we need.
                connection.rollback()
                cursor = connection.cursor()
        connection.commit()

    def _sql(self, statement: str) -> str:
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    def run(self, connection: Connection, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """Execute one statement and fetch its rows (none for writes); errors are StoreError."""
        cursor = connection.cursor()
        try:
            cursor.execute(self._sql(statement), params)
            rows = list(cursor.fetchall()) if cursor.description else []
            connection.commit()
        except Exception as exc:
            _safe_rollback(connection)
            raise StoreError(f"{redact(self.uri)}: {_message(exc)}") from exc
        return rows

    # --- writing ----------------------------------------------------------------------------

    def write_predictions(self, connection: Connection, rows: Sequence[PredictionRow]) -> None:
        """Insert recorded predictions; a request id and row already stored keeps its first."""
        if rows:
            self.insert_predictions(connection, OPTIONAL_COLUMNS, rows)
            self.commit(connection)

    def insert_predictions(
        self, connection: Connection, shape: Shape, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Insert rows of one shape (the required columns, then `shape`'s), not yet committed.

        A request id and row already stored keeps its first prediction. On an error the
        transaction is rolled back, rows inserted before by the same transaction included.
        """
        if not rows:
            return
        statement = self._inserts.get(shape)
        if statement is None:
            statement = self._inserts[shape] = self._insert_statement(shape)
        cursor = connection.cursor()
        try:
            if self.dialect == "sqlite":
                cursor.executemany(statement, rows)
            else:
                cursor.execute(statement, [list(column) for column in zip(*rows, strict=True)])
        except Exception as exc:
            _safe_rollback(connection)
            raise StoreError(f"{redact(self.uri)}: {_message(exc)}") from exc

    def commit(self, connection: Connection) -> None:
        """Commit what was inserted since the last commit; errors are StoreError."""
        try:
            connection.commit()
        except Exception as exc:
            _safe_rollback(connection)
            raise StoreError(f"{redact(self.uri)}: {_message(exc)}") from exc

    def _insert_statement(self, shape: Shape) -> str:
        if not set(shape) <= set(OPTIONAL_COLUMNS):
            raise ValueError(f"not optional prediction columns: {shape!r}")
        columns = (*REQUIRED_COLUMNS, *shape)
        names = ", ".join(columns)
        # Only our own column names are formatted into the statement; values are parameters.
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(columns))
            return f"INSERT OR IGNORE INTO predictions ({names}) VALUES ({marks})"  # noqa: S608
        # One statement per chunk of rows of one shape (server/recording.py), the columns as
        # arrays: pg8000's executemany would make a round trip per row.
        arrays = ", ".join(f"%s::{_PG_TYPES[c]}[]" for c in columns)
        return (
            f"INSERT INTO predictions ({names}) SELECT * FROM unnest({arrays}) "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )

    def find_predictions(
        self, connection: Connection, keys: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], StoredPrediction]:
        """The recorded predictions among `keys` (request id, row index)."""
        wanted = set(keys)
        ids = sorted({request_id for request_id, _ in wanted})
        if not ids:
            return {}
        params: list[Any]
        if self.dialect == "sqlite":
            where, params = f"request_id IN ({', '.join('?' * len(ids))})", list(ids)
        else:
            where, params = "request_id = ANY(?)", [ids]
        # Only placeholders are formatted into the statement; the ids travel as parameters.
        statement = f"SELECT request_id, row_index, model_name, prediction IS NOT NULL FROM predictions WHERE {where}"  # noqa: S608
        found = self.run(connection, statement, params)
        return {
            (request_id, int(row)): StoredPrediction(name, bool(classifier))
            for request_id, row, name, classifier in found
            if (request_id, int(row)) in wanted
        }

    def write_feedback(self, connection: Connection, rows: Sequence[FeedbackRow]) -> None:
        """Store feedback; feedback for the same prediction again replaces it (a correction)."""
        if not rows:
            return
        cursor = connection.cursor()
        try:
            cursor.executemany(
                self._sql(
                    "INSERT INTO feedback VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (request_id, row_index) DO UPDATE SET "
                    "label = excluded.label, value = excluded.value, ts = excluded.ts"
                ),
                rows,
            )
            connection.commit()
        except Exception as exc:
            _safe_rollback(connection)
            raise StoreError(f"{redact(self.uri)}: {_message(exc)}") from exc

    def delete_older_than(self, connection: Connection, cutoff: float) -> None:
        """Retention: forget predictions and feedback recorded before `cutoff` (unix time)."""
        self.run(connection, "DELETE FROM predictions WHERE ts < ?", [cutoff])
        self.run(connection, "DELETE FROM feedback WHERE ts < ?", [cutoff])

    # --- reading ----------------------------------------------------------------------------

    def confusion(
        self, connection: Connection, model_name: str, since: float
    ) -> dict[tuple[str, str], dict[tuple[str, str], int]]:
        """(version, variant) -> (predicted, label) -> count, the shadow counted as challenger."""
        found = self.run(
            connection,
            f"SELECT p.model_version, p.variant, p.prediction, f.label, COUNT(*) {_LABELLED} "
            "WHERE p.model_name = ? AND p.ts >= ? AND f.label IS NOT NULL "
            "AND p.prediction IS NOT NULL GROUP BY 1, 2, 3, 4 "
            f"UNION ALL SELECT p.shadow_version, 'challenger', p.shadow_prediction, f.label, "
            f"COUNT(*) {_LABELLED} WHERE p.model_name = ? AND p.ts >= ? "
            "AND f.label IS NOT NULL AND p.shadow_prediction IS NOT NULL GROUP BY 1, 2, 3, 4",
            [model_name, since, model_name, since],
        )
        result: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
        for version, variant, predicted, label, count in found:
            cells = result.setdefault((str(version), str(variant)), {})
            cells[(predicted, label)] = cells.get((predicted, label), 0) + int(count)
        return result

    def error_sums(
        self, connection: Connection, model_name: str, since: float
    ) -> dict[tuple[str, str], ErrorSums]:
        """(version, variant) -> sums of the regressor's errors, the shadow as challenger."""
        found: list[Any] = []
        for version, variant, answer in (
            ("p.model_version", "p.variant", "p.value"),
            ("p.shadow_version", "'challenger'", "p.shadow_value"),
        ):
            error = f"({answer} - f.value)"
            found += self.run(
                connection,
                f"SELECT {version}, {variant}, COUNT(*), SUM(ABS({error})), "
                f"SUM({error} * {error}), SUM({error} * {error} * {error} * {error}) "
                f"{_LABELLED} WHERE p.model_name = ? AND p.ts >= ? AND f.value IS NOT NULL "
                f"AND {answer} IS NOT NULL GROUP BY 1, 2",
                [model_name, since],
            )
        result: dict[tuple[str, str], ErrorSums] = {}
        for version, variant, n, abs_sum, sq_sum, quad_sum in found:
            key = (str(version), str(variant))
            before = result.get(key, ErrorSums(0, 0.0, 0.0, 0.0))
            result[key] = ErrorSums(
                before.n + int(n),
                before.abs_sum + float(abs_sum),
                before.sq_sum + float(sq_sum),
                before.quad_sum + float(quad_sum),
            )
        return result

    def prediction_counts(
        self, connection: Connection, model_name: str, since: float
    ) -> dict[tuple[str, str], int]:
        """(version, variant) -> predictions recorded since `since`, labelled or not."""
        found = self.run(
            connection,
            "SELECT model_version, variant, COUNT(*) FROM predictions "
            "WHERE model_name = ? AND ts >= ? GROUP BY 1, 2 "
            "UNION ALL SELECT shadow_version, 'challenger', COUNT(*) FROM predictions "
            "WHERE model_name = ? AND ts >= ? AND shadow_version IS NOT NULL GROUP BY 1, 2",
            [model_name, since, model_name, since],
        )
        counts: dict[tuple[str, str], int] = {}
        for version, variant, n in found:
            key = (str(version), str(variant))
            counts[key] = counts.get(key, 0) + int(n)
        return counts

    def labelled(
        self, connection: Connection, model_name: str, since: float, until: float, limit: int
    ) -> list[LabelledRow]:
        """The most recent `limit` labelled predictions made in [since, until), oldest first."""
        found = self.run(
            connection,
            f"SELECT p.ts, p.model_version, p.features, f.label, f.value {_LABELLED} "
            "WHERE p.model_name = ? AND p.ts >= ? AND p.ts < ? "
            "ORDER BY p.ts DESC, p.request_id, p.row_index LIMIT ?",
            [model_name, since, until, limit],
        )
        rows = [
            LabelledRow(float(ts), str(v), bytes(features), label, _float(value))
            for ts, v, features, label, value in found
        ]
        rows.reverse()
        return rows

    def count_predictions(
        self, connection: Connection, model_name: str, since: float, until: float
    ) -> int:
        found = self.run(
            connection,
            "SELECT COUNT(*) FROM predictions WHERE model_name = ? AND ts >= ? AND ts < ?",
            [model_name, since, until],
        )
        return int(found[0][0])

    def paired(
        self,
        connection: Connection,
        model_name: str,
        champion: str,
        challenger: str,
        since: float,
        limit: int,
    ) -> list[PairedRow]:
        """Labelled rows the champion answered and the challenger shadowed, most recent first."""
        found = self.run(
            connection,
            "SELECT p.prediction, p.value, p.shadow_prediction, p.shadow_value, f.label, f.value "
            f"{_LABELLED} WHERE p.model_name = ? AND p.model_version = ? "
            "AND p.variant = 'champion' AND p.shadow_version = ? AND p.ts >= ? "
            "AND (f.label IS NOT NULL OR f.value IS NOT NULL) ORDER BY p.ts DESC LIMIT ?",
            [model_name, champion, challenger, since, limit],
        )
        rows = []
        for prediction, value, shadow_prediction, shadow_value, label, true_value in found:
            if prediction is not None and shadow_prediction is not None and label is not None:
                rows.append(PairedRow(prediction, shadow_prediction, label))
            elif value is not None and shadow_value is not None and true_value is not None:
                rows.append(PairedRow(float(value), float(shadow_value), float(true_value)))
        return rows


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _safe_rollback(connection: Connection) -> None:
    try:
        connection.rollback()
    except Exception:  # a broken connection cannot roll back; the caller replaces it
        return


def _postgres_options(uri: str, timeout: float) -> dict[str, Any]:
    """pg8000's connect() arguments from a libpq-style URI (user, password, host, port, db)."""
    parts = urllib.parse.urlsplit(uri)
    query = dict(urllib.parse.parse_qsl(parts.query))
    options: dict[str, Any] = {
        "user": urllib.parse.unquote(parts.username or "postgres"),
        "password": urllib.parse.unquote(parts.password) if parts.password else None,
        "database": urllib.parse.unquote(parts.path.lstrip("/")) or None,
        "timeout": timeout,
        "application_name": "model-server",
    }
    if "host" in query and query["host"].startswith("/"):  # a Unix socket directory
        port = parts.port or 5432
        options["unix_sock"] = f"{query['host']}/.s.PGSQL.{port}"
    else:
        options["host"] = parts.hostname or "localhost"
        options["port"] = parts.port or 5432
    mode = query.get("sslmode", "disable")
    if mode in ("require", "verify-ca", "verify-full"):
        context = ssl.create_default_context()
        if mode == "require":  # encrypted, certificate not checked: libpq's meaning
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        options["ssl_context"] = context
    elif mode not in ("disable", "allow", "prefer"):
        raise StoreError(f"sslmode must be disable, require, verify-ca or verify-full: {mode!r}")
    return options
