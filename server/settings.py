"""Server configuration: every environment variable the server reads, declared once.

`VARIABLES` is the table: name, the `Settings` field it sets, its kind, bounds and a sentence for
the reader. `Settings.from_env` parses the plain variables from it (a new setting is one row)
and applies the few rules that span variables by hand; `make docs` writes
docs/reference/settings.md from the same table.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ChallengerMode = Literal["off", "split", "shadow"]
GrpcTransport = Literal["builtin", "grpcio"]

# Route groups that API keys can leave open (see server.auth); probes are always open.
ROUTE_GROUPS = ("metrics", "metadata", "docs")


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    """The parsed configuration; each field's variable and meaning are in `VARIABLES`."""

    model_uri: str = "models:/iris-classifier@production"
    tracking_uri: str | None = None
    fallback_path: Path | None = None
    host: str = "127.0.0.1"  # the image and the chart set HOST=0.0.0.0
    port: int = 8000
    grpc_port: int = 0
    grpc_transport: GrpcTransport = "builtin"
    log_level: str = "info"
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    max_concurrency: int = 0
    poll_seconds: float = 30.0
    retry_seconds: float = 5.0
    challenger_uri: str | None = None
    challenger_mode: ChallengerMode = "off"
    challenger_traffic: float = 0.0
    drift_window: int = 1000
    drift_interval_seconds: float = 10.0
    drift_min_rows: int = 300
    drift_rows_per_request: int = 10
    drift_warning_psi: float = 0.1
    drift_threshold_psi: float = 0.25
    # Secrets never appear in the settings' repr (a log line or a traceback may print it).
    api_keys: frozenset[str] = field(default_factory=frozenset, repr=False)  # both sources
    api_keys_file: Path | None = None
    # Kept apart so that reloading the file never drops a key given in the variable.
    api_keys_from_variable: frozenset[str] = field(default_factory=frozenset, repr=False)
    api_keys_reload_seconds: float = 10.0
    open_routes: frozenset[str] = frozenset({"metrics"})
    registry_timeout_seconds: float = 10.0
    shutdown_delay_seconds: float = 5.0
    shutdown_grace_seconds: float = 20.0
    body_timeout_seconds: float = 10.0
    max_header_bytes: int = 16 * 1024
    header_timeout_seconds: float = 10.0
    max_connections: int = 10_000
    access_log: bool = False
    cors_allow_origins: tuple[str, ...] = ()
    mlflow_username: str | None = None
    mlflow_password: str | None = field(default=None, repr=False)
    mlflow_token: str | None = field(default=None, repr=False)
    record_predictions: bool = False
    prediction_store_uri: str = field(
        default_factory=lambda: default_prediction_store(), repr=False
    )
    record_sample_rate: float = 1.0
    record_buffer_rows: int = 50_000
    record_batch_rows: int = 1000
    record_flush_seconds: float = 1.0
    record_retention_days: float = 30.0
    feedback_max_rows: int = 1000
    quality_window_seconds: float = 3600.0
    quality_interval_seconds: float = 30.0
    quality_margin: float = 0.05
    quality_min_labels: int = 100

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Parse the environment; raise SettingsError naming the variable on a bad value."""
        env = os.environ if env is None else env

        def read(name: str) -> str:
            # Every read goes through the table, so the reference lists all the server reads.
            if name not in _BY_NAME:
                raise KeyError(f"{name} is read from the environment but not declared in VARIABLES")
            return env.get(name, "")

        default = cls()
        values: dict[str, Any] = {}
        for variable in VARIABLES:
            if variable.field is not None and not variable.by_hand:
                fallback = getattr(default, variable.field)
                values[variable.field] = _parse(variable, read(variable.name), fallback)

        # What the kinds do not cover: checks of one value beyond its kind, then across values.
        for name, uri in (
            ("MODEL_URI", values["model_uri"]),
            ("CHALLENGER_URI", values["challenger_uri"]),
        ):
            if uri:
                _check_model_uri(name, uri)
        mode = values["challenger_mode"]
        if mode != "off" and values["challenger_uri"] is None:
            raise SettingsError(f"CHALLENGER_MODE={mode} needs CHALLENGER_URI")
        log_level = read("LOG_LEVEL").strip().lower() or default.log_level
        if log_level not in _BY_NAME["LOG_LEVEL"].choices:
            raise SettingsError("LOG_LEVEL must be one of debug, info, warning, error, critical")
        values["log_level"] = log_level
        workers = read("WORKERS").strip() or "1"
        if workers != "1":
            # Each worker would hold its own metrics and model lifecycle, so /metrics would
            # answer for whichever process took the scrape; replicas keep every figure exact.
            raise SettingsError(
                f"WORKERS={workers[:20]}: the server runs one worker per process; "
                "scale with more replicas (or processes behind a balancer) instead"
            )
        if values["grpc_port"] == values["port"]:
            raise SettingsError(f"GRPC_PORT must differ from PORT ({values['port']})")
        store_uri = read("PREDICTION_STORE_URI").strip() or default.prediction_store_uri
        if not store_uri.startswith(("sqlite:///", "postgresql://", "postgres://")):
            # Never echo the value: it may carry a password.
            raise SettingsError("PREDICTION_STORE_URI must be sqlite:///path or postgresql://...")
        values["prediction_store_uri"] = store_uri
        window, min_rows = values["drift_window"], values["drift_min_rows"]
        if not read("DRIFT_MIN_ROWS").strip():
            # The default follows a smaller window, so DRIFT_WINDOW alone is always enough.
            min_rows = values["drift_min_rows"] = min(min_rows, window)
        if min_rows > window:
            raise SettingsError(
                f"DRIFT_MIN_ROWS ({min_rows}) must not exceed DRIFT_WINDOW ({window})"
            )
        warning_psi, threshold_psi = values["drift_warning_psi"], values["drift_threshold_psi"]
        if warning_psi > threshold_psi:
            raise SettingsError(
                f"DRIFT_WARNING_PSI ({warning_psi:g}) must not exceed "
                f"DRIFT_THRESHOLD_PSI ({threshold_psi:g})"
            )
        for name, field_name in (
            ("MODEL_POLL_SECONDS", "poll_seconds"),
            ("API_KEYS_RELOAD_SECONDS", "api_keys_reload_seconds"),
        ):
            if 0 < values[field_name] < 0.1:  # a typo would poll thousands of times a second
                raise SettingsError(
                    f"{name} must be 0 (off) or at least 0.1, got {values[field_name]:g}"
                )
        keys = read("API_KEYS")
        values["api_keys"] = read_api_keys(keys, values["api_keys_file"])
        values["api_keys_from_variable"] = frozenset(split_keys(keys))
        values["open_routes"] = _route_groups(
            "OPEN_ROUTES", read("OPEN_ROUTES"), default.open_routes
        )
        return cls(**values)


Kind = Literal["int", "float", "text", "flag", "list", "choice", "path", "secret"]

# The reference's sections, in order: group key -> heading.
GROUPS = {
    "serving": "Serving",
    "limits": "Limits and timeouts",
    "lifecycle": "Model lifecycle",
    "challenger": "Champion and challenger",
    "drift": "Drift",
    "keys": "API keys",
    "loop": "Closed loop: recording, feedback, live quality",
    "logging": "Logging",
}


@dataclass(frozen=True)
class Variable:
    """One environment variable the server reads: how to parse it and how to document it."""

    name: str
    field: str | None  # the Settings field it sets; None when it is only checked
    kind: Kind
    group: str
    description: str  # one sentence for the reader: what it does, its unit, what 0 means
    # Inclusive, for int and float. Upper bounds keep a typo from turning into an allocation
    # that fails at load, or a timeout that never fires.
    bounds: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    default: str | None = None  # as the reference shows it; None: the field's default
    by_hand: bool = False  # parsed in from_env, its rule being more than its kind's


# fmt: off
VARIABLES: tuple[Variable, ...] = (
    # --- serving
    Variable("HOST", "host", "text", "serving",
             "Address to listen on: `127.0.0.1` keeps the server to this machine, `0.0.0.0` "
             "listens on every interface (the image and the chart set it)."),
    Variable("PORT", "port", "int", "serving",
             "TCP port of the HTTP API.", bounds=(1, 65535)),
    Variable("GRPC_PORT", "grpc_port", "int", "serving",
             "TCP port of the Open Inference Protocol over gRPC, beside HTTP and different from "
             "`PORT`; 0: no gRPC.", bounds=(0, 65535)),
    Variable("GRPC_TRANSPORT", "grpc_transport", "choice", "serving",
             "What speaks HTTP/2 on `GRPC_PORT`: `builtin`, the server's own small HTTP/2 "
             "layer on its event loop (server/http2.py, a fraction of grpcio's CPU per call), "
             "or `grpcio`, grpc's asyncio server (needs the grpcio package, which the image "
             "leaves out).",
             choices=("builtin", "grpcio")),
    Variable("WORKERS", None, "choice", "serving",
             "Worker processes: only 1, because each process would keep its own metrics and "
             "models; scale with more replicas instead.", choices=("1",), default="1",
             by_hand=True),
    Variable("CORS_ALLOW_ORIGINS", "cors_allow_origins", "list", "serving",
             "Browser origins allowed to call the API (CORS), comma-separated; unset: no CORS "
             "headers at all."),
    # --- limits and timeouts
    Variable("MAX_BODY_BYTES", "max_body_bytes", "int", "limits",
             "Largest request body in bytes, counted while reading; a larger one is answered "
             "413 (a gRPC request message: `RESOURCE_EXHAUSTED`).", bounds=(1, 64 * 1024 * 1024)),
    Variable("MAX_BATCH", "max_batch", "int", "limits",
             "Most rows in one request (more is answered 413) and in one model call that "
             "requests share.", bounds=(1, 100_000)),
    Variable("MAX_CONCURRENCY", "max_concurrency", "int", "limits",
             "Requests in flight at most, HTTP and gRPC together, past which a request is "
             "answered 503 with `Retry-After` (gRPC: `UNAVAILABLE`; probes and `/metrics` are "
             "never shed); 0: no limit.",
             bounds=(0, 100_000)),
    Variable("BODY_TIMEOUT_SECONDS", "body_timeout_seconds", "float", "limits",
             "Seconds a request body may take to arrive from its first read, else 408 and the "
             "connection is closed (a gRPC request message, from the call's start: "
             "`DEADLINE_EXCEEDED`); 0: no deadline.", bounds=(0, 3600)),
    Variable("MAX_HEADER_BYTES", "max_header_bytes", "int", "limits",
             "Largest request head (request line and headers) in bytes; a larger one is "
             "answered 431 and the connection closed (a gRPC call's metadata: "
             "`RESOURCE_EXHAUSTED`).", bounds=(1024, 1024 * 1024)),
    Variable("HEADER_TIMEOUT_SECONDS", "header_timeout_seconds", "float", "limits",
             "Seconds a new connection has to send its first request head, and any later head "
             "to complete from its first byte, else the connection is closed (on the gRPC port: "
             "seconds to complete the HTTP/2 handshake).",
             bounds=(0.5, 600)),
    Variable("MAX_CONNECTIONS", "max_connections", "int", "limits",
             "Open connections at most (and always 5 %, at least 64, below the descriptor "
             "limit), HTTP and gRPC getting half each when gRPC is on; past it the HTTP "
             "connection that has waited longest for a request is evicted, a new gRPC one closed.",
             bounds=(16, 1_000_000)),
    Variable("SHUTDOWN_DELAY_SECONDS", "shutdown_delay_seconds", "float", "limits",
             "Seconds after SIGTERM during which readiness answers 503 but requests are still "
             "served, so load balancers stop sending any; 0: stop accepting at once.",
             bounds=(0, 300)),
    Variable("SHUTDOWN_GRACE_SECONDS", "shutdown_grace_seconds", "float", "limits",
             "Seconds that accepted requests (HTTP and gRPC alike), then the queue of recorded "
             "predictions, get to finish once the server stops accepting connections; 0: none.",
             bounds=(0, 3600)),
    # --- model lifecycle
    Variable("MODEL_URI", "model_uri", "text", "lifecycle",
             "The model to serve: `models:/<name>@<alias>` follows the alias, "
             "`models:/<name>/<version>` pins a version, a directory serves an exported model."),
    Variable("MLFLOW_TRACKING_URI", "tracking_uri", "text", "lifecycle",
             "The MLflow registry, `http(s)://...` or `sqlite:///path` (credentials in the URL "
             "are sent as basic auth and never shown); unset: the store `make train` writes, "
             "`.mlflow/mlflow.db`."),
    Variable("MODEL_FALLBACK_PATH", "fallback_path", "path", "lifecycle",
             "Directory of an exported model served while the registry cannot be reached (the "
             "image sets `/opt/model`); unset: no fallback."),
    Variable("MODEL_POLL_SECONDS", "poll_seconds", "float", "lifecycle",
             "Seconds between checks of where the model's alias points; 0: load once and never "
             "poll.", bounds=(0, 86_400)),
    Variable("MODEL_RETRY_SECONDS", "retry_seconds", "float", "lifecycle",
             "Seconds before a model that could not be fetched or loaded is tried again, twice "
             "as long each time up to five minutes.", bounds=(0.1, 3600)),
    Variable("REGISTRY_TIMEOUT_SECONDS", "registry_timeout_seconds", "float", "lifecycle",
             "Seconds one call to the MLflow server may take.", bounds=(0.1, 300)),
    Variable("MLFLOW_TRACKING_USERNAME", "mlflow_username", "secret", "lifecycle",
             "User name for the MLflow server's basic auth, with `MLFLOW_TRACKING_PASSWORD`; "
             "wins over one in `MLFLOW_TRACKING_URI`."),
    Variable("MLFLOW_TRACKING_PASSWORD", "mlflow_password", "secret", "lifecycle",
             "Password for the MLflow server's basic auth."),
    Variable("MLFLOW_TRACKING_TOKEN", "mlflow_token", "secret", "lifecycle",
             "Bearer token for the MLflow server, sent when no user name and password are set."),
    # --- champion and challenger
    Variable("CHALLENGER_URI", "challenger_uri", "text", "challenger",
             "A second model served beside `MODEL_URI`, in the same forms; it follows its alias "
             "and reloads like the champion."),
    Variable("CHALLENGER_MODE", "challenger_mode", "choice", "challenger",
             "`off` serves no challenger, `split` sends it a share of the requests, `shadow` "
             "answers with the champion and scores the challenger on the same rows afterwards.",
             choices=("off", "split", "shadow")),
    Variable("CHALLENGER_TRAFFIC", "challenger_traffic", "float", "challenger",
             "Share of the requests the challenger answers in `split` mode, drawn per request; "
             "0: none.", bounds=(0, 1)),
    # --- drift
    Variable("DRIFT_WINDOW", "drift_window", "int", "drift",
             "Most recent scored rows the drift figures are computed over.", bounds=(1, 100_000)),
    Variable("DRIFT_INTERVAL_SECONDS", "drift_interval_seconds", "float", "drift",
             "Seconds between drift computations, off the request path.", bounds=(0.1, 3600)),
    # A handful of rows gives a PSI of several units by chance alone.
    Variable("DRIFT_MIN_ROWS", "drift_min_rows", "int", "drift",
             "Rows needed in the window before any PSI is reported or exported (below it "
             "`/drift` says insufficient data), at most `DRIFT_WINDOW`; unset, the default or "
             "`DRIFT_WINDOW` when that is smaller.", bounds=(1, 100_000)),
    Variable("DRIFT_ROWS_PER_REQUEST", "drift_rows_per_request", "int", "drift",
             "Most rows one scoring call adds to the window, evenly spaced through its batch, so "
             "that one large batch cannot fill it.", bounds=(1, 100_000)),
    Variable("DRIFT_WARNING_PSI", "drift_warning_psi", "float", "drift",
             "PSI from which `/drift` says `warning`; at most `DRIFT_THRESHOLD_PSI`.",
             bounds=(0.001, 10)),
    Variable("DRIFT_THRESHOLD_PSI", "drift_threshold_psi", "float", "drift",
             "PSI from which `/drift` says `drift` and the drift alerts fire (it is exported as "
             "`model_drift_threshold_psi`).", bounds=(0.001, 10)),
    # --- API keys
    Variable("API_KEYS", "api_keys", "secret", "keys",
             "API keys, comma-separated, that clients send as `Authorization: Bearer <key>`, "
             "merged with the file's; with neither set every route is open.", by_hand=True),
    Variable("API_KEYS_FILE", "api_keys_file", "path", "keys",
             "File of API keys, one a line or comma-separated (a mounted Secret); unreadable or "
             "holding no keys, it stops the server at start."),
    Variable("API_KEYS_RELOAD_SECONDS", "api_keys_reload_seconds", "float", "keys",
             "Seconds between reads of `API_KEYS_FILE`, whose new keys apply from the next "
             "request; 0: read once at start.", bounds=(0, 3600)),
    Variable("OPEN_ROUTES", "open_routes", "list", "keys",
             "Route groups that need no key when keys are set (probes never do); `none`: "
             "all need one.", choices=ROUTE_GROUPS, by_hand=True),
    # --- closed loop
    Variable("RECORD_PREDICTIONS", "record_predictions", "flag", "loop",
             "Record every prediction (its features included) for feedback and live quality; "
             "off by default, and then `/feedback` and `/quality` answer 404."),
    Variable("PREDICTION_STORE_URI", "prediction_store_uri", "secret", "loop",
             "Store the replicas share: `sqlite:///path` or "
             "`postgresql://user:password@host:port/database`.",
             default="sqlite:///<repository>/.loop/predictions.db", by_hand=True),
    Variable("RECORD_SAMPLE_RATE", "record_sample_rate", "float", "loop",
             "Share of the requests recorded, decided by a hash of the request id; 0: none.",
             bounds=(0, 1)),
    Variable("RECORD_BUFFER_ROWS", "record_buffer_rows", "int", "loop",
             "Rows waiting in memory for the store at most; past it new predictions are dropped "
             "and counted.", bounds=(1, 1_000_000)),
    Variable("RECORD_BATCH_ROWS", "record_batch_rows", "int", "loop",
             "Rows per write to the store.", bounds=(1, 100_000)),
    Variable("RECORD_FLUSH_SECONDS", "record_flush_seconds", "float", "loop",
             "Seconds between writes to the store; feedback can match a prediction once it is "
             "written.", bounds=(0.01, 3600)),
    Variable("RECORD_RETENTION_DAYS", "record_retention_days", "float", "loop",
             "Days predictions and feedback are kept; older ones are deleted (checked every ten "
             "minutes).",
             bounds=(0.001, 3650)),
    Variable("FEEDBACK_MAX_ROWS", "feedback_max_rows", "int", "loop",
             "Most items in one `POST /feedback` (its body is also bounded by "
             "`MAX_BODY_BYTES`).", bounds=(1, 100_000)),
    Variable("QUALITY_WINDOW_SECONDS", "quality_window_seconds", "float", "loop",
             "Live quality covers the predictions of this many seconds before now.",
             bounds=(1, 31_622_400)),
    Variable("QUALITY_INTERVAL_SECONDS", "quality_interval_seconds", "float", "loop",
             "Seconds between live quality computations, off the request path.",
             bounds=(0.1, 3600)),
    Variable("QUALITY_MARGIN", "quality_margin", "float", "loop",
             "Share of its held-out figure a version's live quality may fall short by before the "
             "alert; 0: any shortfall its confidence interval shows.", bounds=(0, 0.99)),
    Variable("QUALITY_MIN_LABELS", "quality_min_labels", "int", "loop",
             "Labels needed before live quality can raise the alert.", bounds=(1, 10_000_000)),
    # --- logging
    Variable("LOG_LEVEL", "log_level", "choice", "logging",
             "Least severe level logged, as JSON lines on stdout; any case.",
             choices=("critical", "error", "warning", "info", "debug"), by_hand=True),
    Variable("ACCESS_LOG", "access_log", "flag", "logging",
             "Log one line per request, whatever `LOG_LEVEL` says."),
)
# fmt: on
_BY_NAME = {variable.name: variable for variable in VARIABLES}

# The accepted range of every numeric setting, inclusive (docs/reference/settings.md shows them).
NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    v.name: v.bounds for v in VARIABLES if v.bounds is not None
}

# Rules between variables, as the reference states them; from_env enforces each.
CROSS_CHECKS = (
    "`DRIFT_MIN_ROWS` may not exceed `DRIFT_WINDOW`.",
    "`DRIFT_WARNING_PSI` may not exceed `DRIFT_THRESHOLD_PSI`.",
    "`GRPC_PORT` must differ from `PORT`.",
    "`CHALLENGER_MODE` other than `off` needs `CHALLENGER_URI`.",
    "`API_KEYS` and `API_KEYS_FILE` may both be set; their keys are merged.",
    "`MODEL_POLL_SECONDS` and `API_KEYS_RELOAD_SECONDS` are 0 (off) or at least 0.1.",
)


def shown_default(variable: Variable) -> str:
    """The default as the reference shows it; "" when the variable is unset by default."""
    if variable.default is not None:
        return variable.default
    assert variable.field is not None
    value = getattr(Settings(), variable.field)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return shown_number(value)
    if isinstance(value, frozenset | tuple):
        return ",".join(sorted(value))
    return str(value)


def _parse(variable: Variable, raw: str, fallback: Any) -> Any:
    """One variable's value by its kind; empty is unset, which gives the fallback."""
    name, kind = variable.name, variable.kind
    if kind in ("int", "float"):
        return _number(variable, raw.strip(), fallback)
    if kind == "flag":
        return _flag(name, raw, fallback)
    if kind == "secret":
        return raw or fallback  # used as given: a credential is sent byte for byte
    value = raw.strip()
    if kind == "path":
        return Path(value) if value else fallback
    if kind == "list":
        return tuple(item.strip() for item in value.split(",") if item.strip()) or fallback
    if kind == "choice" and value and value not in variable.choices:
        *others, last = variable.choices
        allowed = f"{', '.join(others)} or {last}" if others else last
        raise SettingsError(f"{name} must be {allowed}, got {value[:50]!r}")
    return value or fallback


def _number(variable: Variable, raw: str, fallback: float) -> float:
    if not raw:
        return fallback
    assert variable.bounds is not None
    low, high = variable.bounds
    integral = variable.kind == "int"
    try:
        value = int(raw) if integral else float(raw)
    except ValueError:
        kind = "a whole number" if integral else "a number"
        raise SettingsError(f"{variable.name} must be {kind}, got {raw[:50]!r}") from None
    if not low <= value <= high:  # NaN fails both comparisons, so it is refused too
        allowed = f"between {shown_number(low)} and {shown_number(high)}"
        raise SettingsError(f"{variable.name} must be {allowed}, got {raw[:50]!r}")
    return value


def shown_number(bound: float) -> str:
    """A number as the docs write it: 1000000, not 1e+06."""
    return str(int(bound)) if bound == int(bound) else repr(bound)


def _flag(name: str, raw: str, fallback: bool) -> bool:
    value = raw.strip().lower()
    if not value:
        return fallback
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {value!r}")


def _route_groups(name: str, raw: str, fallback: frozenset[str]) -> frozenset[str]:
    value = raw.strip().lower()
    if not value:
        return fallback
    if value == "none":
        return frozenset()
    groups = frozenset(g.strip() for g in value.split(",") if g.strip())
    unknown = sorted(groups - set(ROUTE_GROUPS))
    if unknown:
        raise SettingsError(
            f"{name} takes none or a comma-separated list of {', '.join(ROUTE_GROUPS)}; "
            f"got {', '.join(unknown)[:100]!r}"
        )
    return groups


def _check_model_uri(variable: str, uri: str) -> None:
    """Refuse a registered model's bare name or a models:/ URI without alias or version."""
    if uri.startswith("models:/"):
        reference = uri.removeprefix("models:/").strip("/")
        name, at, alias = reference.partition("@")
        version = reference.partition("/")[2]
        if (at and name and alias) or (not at and version.isdigit()):
            return
        name = name.partition("/")[0]
        if not name:
            raise SettingsError(
                f"{variable}={uri!r} names no model: use models:/<name>@<alias> "
                "or models:/<name>/<version>"
            )
        raise SettingsError(
            f"{variable}={uri!r} names no alias or version; "
            f"did you mean {variable}=models:/{name}@production?"
        )
    # A bare word (or name@alias) that is no directory here was meant for the registry.
    if "/" in uri or Path(uri).exists():
        return
    name, _, alias = uri.partition("@")
    raise SettingsError(
        f"{variable}={uri!r} is neither a models:/ URI nor a directory; "
        f"did you mean {variable}=models:/{name}@{alias or 'production'}?"
    )


def default_prediction_store() -> str:
    """The embedded store beside the repository's other local data, as `make serve` uses it."""
    return f"sqlite:///{Path(__file__).resolve().parent.parent / '.loop' / 'predictions.db'}"


def split_keys(text: str) -> set[str]:
    """Keys one a line or comma-separated (as the chart's Secret holds them), or both."""
    return {k.strip() for k in text.replace(",", "\n").splitlines() if k.strip()}


def read_key_file(path: Path) -> frozenset[str]:
    """The keys in API_KEYS_FILE; SettingsError when it cannot be read or holds none."""
    try:
        content = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "it is not UTF-8 text"
        raise SettingsError(f"API_KEYS_FILE {str(path)!r} cannot be read: {reason}") from None
    keys = split_keys(content)
    if not keys:
        # An empty file would otherwise turn authentication off without a word.
        raise SettingsError(
            f"API_KEYS_FILE {str(path)!r} holds no keys; unset it to run without keys"
        )
    return frozenset(keys)


def read_api_keys(variable: str, path: Path | None) -> frozenset[str]:
    """API_KEYS and API_KEYS_FILE merged; either one set but holding no keys is an error."""
    keys = split_keys(variable)
    if variable.strip() and not keys:
        raise SettingsError("API_KEYS holds no keys; unset it to run without keys")
    if path is not None:
        keys |= read_key_file(path)
    return frozenset(keys)
