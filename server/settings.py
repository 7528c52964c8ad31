"""Server configuration: read once from the environment, typed, with every default in one place."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ChallengerMode = Literal["off", "split", "shadow"]

# Route groups that API keys can leave open (see server.auth); probes are always open.
ROUTE_GROUPS = ("metrics", "metadata", "docs")


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    model_uri: str = "models:/iris-classifier@production"
    tracking_uri: str | None = None
    fallback_path: Path | None = None
    host: str = "127.0.0.1"  # the image and the chart set HOST=0.0.0.0
    port: int = 8000
    # The Open Inference Protocol over gRPC listens here, beside HTTP; 0 (the default): off.
    grpc_port: int = 0
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
    # Below this many rows in the window drift is "insufficient data" and no PSI is exported:
    # a handful of rows gives a PSI of several units by chance alone.
    drift_min_rows: int = 300
    # One scoring call (a request, or requests scored together) adds at most this many rows,
    # evenly spaced, so that one large batch cannot fill the window.
    drift_rows_per_request: int = 10
    drift_warning_psi: float = 0.1
    drift_threshold_psi: float = 0.25
    api_keys: frozenset[str] = field(default_factory=frozenset)  # API_KEYS and the file's
    api_keys_file: Path | None = None
    api_keys_from_variable: frozenset[str] = field(default_factory=frozenset)
    api_keys_reload_seconds: float = 10.0
    # With API keys set, these route groups stay open; the rest need a key.
    open_routes: frozenset[str] = frozenset({"metrics"})
    registry_timeout_seconds: float = 10.0
    # SIGTERM: readiness turns 503 at once, the server keeps answering for this long so load
    # balancers notice, then stops accepting and lets accepted requests finish within the grace.
    shutdown_delay_seconds: float = 5.0
    shutdown_grace_seconds: float = 20.0
    # The whole request body must arrive within this; a client trickling bytes gets 408.
    body_timeout_seconds: float = 10.0
    # A request's head (request line and headers) is refused with 431 past this many bytes, and
    # must be complete within the timeout of the connection opening or of its previous answer.
    max_header_bytes: int = 16 * 1024
    header_timeout_seconds: float = 10.0
    # Past this many open connections (or the descriptor limit less a reserve), a new one
    # evicts the connection that has waited longest without sending a request.
    max_connections: int = 10_000
    access_log: bool = False
    # Browser origins allowed to call the API (CORS); empty: no CORS headers at all.
    cors_allow_origins: tuple[str, ...] = ()
    # MLflow server credentials for the registry client (basic auth, or a bearer token).
    mlflow_username: str | None = None
    mlflow_password: str | None = None
    mlflow_token: str | None = None
    # The closed loop: predictions recorded to a store shared by replicas, feedback, live quality.
    record_predictions: bool = True
    prediction_store_uri: str = field(default_factory=lambda: default_prediction_store())
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
        default = cls()

        def text(name: str, fallback: str) -> str:
            value = env.get(name, "").strip()
            return value or fallback

        def number(name: str, fallback: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return fallback
            low, high = NUMERIC_RANGES[name]
            integral = name in _INTEGERS
            try:
                value = int(raw) if integral else float(raw)
            except ValueError:
                kind = "a whole number" if integral else "a number"
                raise SettingsError(f"{name} must be {kind}, got {raw[:50]!r}") from None
            if not low <= value <= high:  # NaN fails both comparisons, so it is refused too
                raise SettingsError(
                    f"{name} must be between {_shown(low)} and {_shown(high)}, got {raw[:50]!r}"
                )
            return value

        def integer(name: str, fallback: int) -> int:
            return int(number(name, fallback))

        mode = text("CHALLENGER_MODE", default.challenger_mode)
        if mode not in ("off", "split", "shadow"):
            raise SettingsError(f"CHALLENGER_MODE must be off, split or shadow, got {mode!r}")
        challenger_uri = env.get("CHALLENGER_URI", "").strip() or None
        model_uri = text("MODEL_URI", default.model_uri)
        for variable, uri in (("MODEL_URI", model_uri), ("CHALLENGER_URI", challenger_uri)):
            if uri:
                _check_model_uri(variable, uri)
        if mode != "off" and challenger_uri is None:
            raise SettingsError(f"CHALLENGER_MODE={mode} needs CHALLENGER_URI")
        fallback = env.get("MODEL_FALLBACK_PATH", "").strip()
        log_level = text("LOG_LEVEL", default.log_level).lower()
        if log_level not in ("critical", "error", "warning", "info", "debug"):
            raise SettingsError("LOG_LEVEL must be one of debug, info, warning, error, critical")
        if text("WORKERS", "1") != "1":
            # Each worker would hold its own metrics and model lifecycle, so /metrics would
            # answer for whichever process took the scrape; replicas keep every figure exact.
            raise SettingsError(
                f"WORKERS={text('WORKERS', '1')[:20]}: the server runs one worker per process; "
                "scale with more replicas (or processes behind a balancer) instead"
            )
        port = integer("PORT", default.port)
        grpc_port = integer("GRPC_PORT", default.grpc_port)
        if grpc_port == port:
            raise SettingsError(f"GRPC_PORT must differ from PORT ({port})")
        store_uri = text("PREDICTION_STORE_URI", default.prediction_store_uri)
        if not store_uri.startswith(("sqlite:///", "postgresql://", "postgres://")):
            # Never echo the value: it may carry a password.
            raise SettingsError("PREDICTION_STORE_URI must be sqlite:///path or postgresql://...")
        drift_window = integer("DRIFT_WINDOW", default.drift_window)
        drift_min_rows = integer("DRIFT_MIN_ROWS", default.drift_min_rows)
        if drift_min_rows > drift_window:
            raise SettingsError(
                f"DRIFT_MIN_ROWS ({drift_min_rows}) must not exceed DRIFT_WINDOW ({drift_window})"
            )
        warning_psi = number("DRIFT_WARNING_PSI", default.drift_warning_psi)
        threshold_psi = number("DRIFT_THRESHOLD_PSI", default.drift_threshold_psi)
        if warning_psi > threshold_psi:
            raise SettingsError(
                f"DRIFT_WARNING_PSI ({warning_psi:g}) must not exceed "
                f"DRIFT_THRESHOLD_PSI ({threshold_psi:g})"
            )
        keys_path = env.get("API_KEYS_FILE", "").strip()
        keys_file = Path(keys_path) if keys_path else None
        return cls(
            model_uri=model_uri,
            tracking_uri=env.get("MLFLOW_TRACKING_URI", "").strip() or None,
            fallback_path=Path(fallback) if fallback else None,
            host=text("HOST", default.host),
            port=port,
            grpc_port=grpc_port,
            log_level=log_level,
            max_body_bytes=integer("MAX_BODY_BYTES", default.max_body_bytes),
            max_batch=integer("MAX_BATCH", default.max_batch),
            max_concurrency=integer("MAX_CONCURRENCY", default.max_concurrency),
            poll_seconds=number("MODEL_POLL_SECONDS", default.poll_seconds),
            retry_seconds=number("MODEL_RETRY_SECONDS", default.retry_seconds),
            challenger_uri=challenger_uri,
            challenger_mode=mode,  # type: ignore[arg-type]
            challenger_traffic=number("CHALLENGER_TRAFFIC", default.challenger_traffic),
            drift_window=drift_window,
            drift_interval_seconds=number("DRIFT_INTERVAL_SECONDS", default.drift_interval_seconds),
            drift_min_rows=drift_min_rows,
            drift_rows_per_request=integer(
                "DRIFT_ROWS_PER_REQUEST", default.drift_rows_per_request
            ),
            drift_warning_psi=warning_psi,
            drift_threshold_psi=threshold_psi,
            api_keys=read_api_keys(env.get("API_KEYS", ""), keys_file),
            api_keys_file=keys_file,
            api_keys_from_variable=frozenset(split_keys(env.get("API_KEYS", ""))),
            api_keys_reload_seconds=number(
                "API_KEYS_RELOAD_SECONDS", default.api_keys_reload_seconds
            ),
            open_routes=_route_groups(env, "OPEN_ROUTES", default.open_routes),
            registry_timeout_seconds=number(
                "REGISTRY_TIMEOUT_SECONDS", default.registry_timeout_seconds
            ),
            shutdown_delay_seconds=number("SHUTDOWN_DELAY_SECONDS", default.shutdown_delay_seconds),
            shutdown_grace_seconds=number("SHUTDOWN_GRACE_SECONDS", default.shutdown_grace_seconds),
            body_timeout_seconds=number("BODY_TIMEOUT_SECONDS", default.body_timeout_seconds),
            max_header_bytes=integer("MAX_HEADER_BYTES", default.max_header_bytes),
            header_timeout_seconds=number("HEADER_TIMEOUT_SECONDS", default.header_timeout_seconds),
            max_connections=integer("MAX_CONNECTIONS", default.max_connections),
            access_log=_flag(env, "ACCESS_LOG", default.access_log),
            cors_allow_origins=tuple(
                o.strip() for o in env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()
            ),
            mlflow_username=env.get("MLFLOW_TRACKING_USERNAME") or None,
            mlflow_password=env.get("MLFLOW_TRACKING_PASSWORD") or None,
            mlflow_token=env.get("MLFLOW_TRACKING_TOKEN") or None,
            record_predictions=_flag(env, "RECORD_PREDICTIONS", default.record_predictions),
            prediction_store_uri=store_uri,
            record_sample_rate=number("RECORD_SAMPLE_RATE", default.record_sample_rate),
            record_buffer_rows=integer("RECORD_BUFFER_ROWS", default.record_buffer_rows),
            record_batch_rows=integer("RECORD_BATCH_ROWS", default.record_batch_rows),
            record_flush_seconds=number("RECORD_FLUSH_SECONDS", default.record_flush_seconds),
            record_retention_days=number("RECORD_RETENTION_DAYS", default.record_retention_days),
            feedback_max_rows=integer("FEEDBACK_MAX_ROWS", default.feedback_max_rows),
            quality_window_seconds=number("QUALITY_WINDOW_SECONDS", default.quality_window_seconds),
            quality_interval_seconds=number(
                "QUALITY_INTERVAL_SECONDS", default.quality_interval_seconds
            ),
            quality_margin=number("QUALITY_MARGIN", default.quality_margin),
            quality_min_labels=integer("QUALITY_MIN_LABELS", default.quality_min_labels),
        )


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


# The accepted range of every numeric setting, inclusive; docs/security.md lists them and a test
# keeps the two in step. Upper bounds keep a typo from turning into an allocation that fails at
# load, or a timeout that never fires.
NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    "PORT": (1, 65535),
    "MAX_BODY_BYTES": (1, 64 * 1024 * 1024),
    "MAX_BATCH": (1, 100_000),
    "MAX_CONCURRENCY": (0, 100_000),
    "MODEL_POLL_SECONDS": (0, 86_400),
    "MODEL_RETRY_SECONDS": (0.1, 3600),
    "CHALLENGER_TRAFFIC": (0, 1),
    "DRIFT_WINDOW": (1, 100_000),
    "DRIFT_INTERVAL_SECONDS": (0.1, 3600),
    "DRIFT_MIN_ROWS": (1, 100_000),
    "DRIFT_ROWS_PER_REQUEST": (1, 100_000),
    "DRIFT_WARNING_PSI": (0.001, 10),
    "DRIFT_THRESHOLD_PSI": (0.001, 10),
    "API_KEYS_RELOAD_SECONDS": (0, 3600),
    "REGISTRY_TIMEOUT_SECONDS": (0.1, 300),
    "SHUTDOWN_DELAY_SECONDS": (0, 300),
    "SHUTDOWN_GRACE_SECONDS": (0, 3600),
    "BODY_TIMEOUT_SECONDS": (0, 3600),
    "MAX_HEADER_BYTES": (1024, 1024 * 1024),
    "HEADER_TIMEOUT_SECONDS": (0.5, 600),
    "MAX_CONNECTIONS": (16, 1_000_000),
    "GRPC_PORT": (0, 65535),
    "RECORD_SAMPLE_RATE": (0, 1),
    "RECORD_BUFFER_ROWS": (1, 1_000_000),
    "RECORD_BATCH_ROWS": (1, 100_000),
    "RECORD_FLUSH_SECONDS": (0.01, 3600),
    "RECORD_RETENTION_DAYS": (0.001, 3650),
    "FEEDBACK_MAX_ROWS": (1, 100_000),
    "QUALITY_WINDOW_SECONDS": (1, 31_622_400),
    "QUALITY_INTERVAL_SECONDS": (0.1, 3600),
    "QUALITY_MARGIN": (0, 0.99),
    "QUALITY_MIN_LABELS": (1, 10_000_000),
}
_INTEGERS = frozenset(
    {
        "PORT",
        "MAX_BODY_BYTES",
        "MAX_BATCH",
        "MAX_CONCURRENCY",
        "DRIFT_WINDOW",
        "DRIFT_MIN_ROWS",
        "DRIFT_ROWS_PER_REQUEST",
        "MAX_HEADER_BYTES",
        "MAX_CONNECTIONS",
        "GRPC_PORT",
        "RECORD_BUFFER_ROWS",
        "RECORD_BATCH_ROWS",
        "FEEDBACK_MAX_ROWS",
        "QUALITY_MIN_LABELS",
    }
)


def _shown(bound: float) -> str:
    """A bound as the docs write it: 1000000, not 1e+06."""
    return str(int(bound)) if bound == int(bound) else repr(bound)


def _flag(env: Mapping[str, str], name: str, fallback: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return fallback
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _route_groups(env: Mapping[str, str], name: str, fallback: frozenset[str]) -> frozenset[str]:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return fallback
    if raw == "none":
        return frozenset()
    groups = frozenset(g.strip() for g in raw.split(",") if g.strip())
    unknown = sorted(groups - set(ROUTE_GROUPS))
    if unknown:
        raise SettingsError(
            f"{name} takes none or a comma-separated list of {', '.join(ROUTE_GROUPS)}; "
            f"got {', '.join(unknown)[:100]!r}"
        )
    return groups


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
