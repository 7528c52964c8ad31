"""Server configuration: read once from the environment, typed, with every default in one place."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ChallengerMode = Literal["off", "split", "shadow"]


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    model_uri: str = "models:/iris-classifier@production"
    tracking_uri: str | None = None
    fallback_path: Path | None = None
    host: str = "127.0.0.1"  # the image and the chart set HOST=0.0.0.0
    port: int = 8000
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
    api_keys: frozenset[str] = field(default_factory=frozenset)
    registry_timeout_seconds: float = 10.0
    # SIGTERM: readiness turns 503 at once, the server keeps answering for this long so load
    # balancers notice, then stops accepting and lets accepted requests finish within the grace.
    shutdown_delay_seconds: float = 5.0
    shutdown_grace_seconds: float = 20.0
    # The whole request body must arrive within this; a client trickling bytes gets 408.
    body_timeout_seconds: float = 10.0
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

        def number(name: str, fallback: float, cast: type, minimum: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return fallback
            try:
                value = cast(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
            return float(value) if cast is float else value

        mode = text("CHALLENGER_MODE", default.challenger_mode)
        if mode not in ("off", "split", "shadow"):
            raise SettingsError(f"CHALLENGER_MODE must be off, split or shadow, got {mode!r}")
        traffic = number("CHALLENGER_TRAFFIC", default.challenger_traffic, float, 0.0)
        if traffic > 1.0:
            raise SettingsError(f"CHALLENGER_TRAFFIC must be between 0 and 1, got {traffic}")
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
        workers = int(number("WORKERS", 1, int, 1))
        if workers != 1:
            # Each worker would hold its own metrics and model lifecycle, so /metrics would
            # answer for whichever process took the scrape; replicas keep every figure exact.
            raise SettingsError(
                f"WORKERS={workers}: the server runs one worker per process; "
                "scale with more replicas (or processes behind a balancer) instead"
            )
        sample_rate = number("RECORD_SAMPLE_RATE", default.record_sample_rate, float, 0.0)
        if sample_rate > 1.0:
            raise SettingsError(f"RECORD_SAMPLE_RATE must be between 0 and 1, got {sample_rate}")
        margin = number("QUALITY_MARGIN", default.quality_margin, float, 0.0)
        if margin >= 1.0:
            raise SettingsError(f"QUALITY_MARGIN must be below 1 (a share), got {margin}")
        store_uri = text("PREDICTION_STORE_URI", default.prediction_store_uri)
        if not store_uri.startswith(("sqlite:///", "postgresql://", "postgres://")):
            # Never echo the value: it may carry a password.
            raise SettingsError("PREDICTION_STORE_URI must be sqlite:///path or postgresql://...")
        return cls(
            model_uri=model_uri,
            tracking_uri=env.get("MLFLOW_TRACKING_URI", "").strip() or None,
            fallback_path=Path(fallback) if fallback else None,
            host=text("HOST", default.host),
            port=int(number("PORT", default.port, int, 1)),
            log_level=log_level,
            max_body_bytes=int(number("MAX_BODY_BYTES", default.max_body_bytes, int, 1)),
            max_batch=int(number("MAX_BATCH", default.max_batch, int, 1)),
            max_concurrency=int(number("MAX_CONCURRENCY", default.max_concurrency, int, 0)),
            poll_seconds=number("MODEL_POLL_SECONDS", default.poll_seconds, float, 0.0),
            retry_seconds=number("MODEL_RETRY_SECONDS", default.retry_seconds, float, 0.1),
            challenger_uri=challenger_uri,
            challenger_mode=mode,  # type: ignore[arg-type]
            challenger_traffic=traffic,
            drift_window=int(number("DRIFT_WINDOW", default.drift_window, int, 1)),
            drift_interval_seconds=number(
                "DRIFT_INTERVAL_SECONDS", default.drift_interval_seconds, float, 0.1
            ),
            api_keys=_read_api_keys(env),
            registry_timeout_seconds=number(
                "REGISTRY_TIMEOUT_SECONDS", default.registry_timeout_seconds, float, 0.1
            ),
            shutdown_delay_seconds=number(
                "SHUTDOWN_DELAY_SECONDS", default.shutdown_delay_seconds, float, 0.0
            ),
            shutdown_grace_seconds=number(
                "SHUTDOWN_GRACE_SECONDS", default.shutdown_grace_seconds, float, 0.0
            ),
            body_timeout_seconds=number(
                "BODY_TIMEOUT_SECONDS", default.body_timeout_seconds, float, 0.0
            ),
            access_log=_flag(env, "ACCESS_LOG", default.access_log),
            cors_allow_origins=tuple(
                o.strip() for o in env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()
            ),
            mlflow_username=env.get("MLFLOW_TRACKING_USERNAME") or None,
            mlflow_password=env.get("MLFLOW_TRACKING_PASSWORD") or None,
            mlflow_token=env.get("MLFLOW_TRACKING_TOKEN") or None,
            record_predictions=_flag(env, "RECORD_PREDICTIONS", default.record_predictions),
            prediction_store_uri=store_uri,
            record_sample_rate=sample_rate,
            record_buffer_rows=int(
                number("RECORD_BUFFER_ROWS", default.record_buffer_rows, int, 1)
            ),
            record_batch_rows=int(number("RECORD_BATCH_ROWS", default.record_batch_rows, int, 1)),
            record_flush_seconds=number(
                "RECORD_FLUSH_SECONDS", default.record_flush_seconds, float, 0.01
            ),
            record_retention_days=number(
                "RECORD_RETENTION_DAYS", default.record_retention_days, float, 0.001
            ),
            feedback_max_rows=int(number("FEEDBACK_MAX_ROWS", default.feedback_max_rows, int, 1)),
            quality_window_seconds=number(
                "QUALITY_WINDOW_SECONDS", default.quality_window_seconds, float, 1.0
            ),
            quality_interval_seconds=number(
                "QUALITY_INTERVAL_SECONDS", default.quality_interval_seconds, float, 0.1
            ),
            quality_margin=margin,
            quality_min_labels=int(
                number("QUALITY_MIN_LABELS", default.quality_min_labels, int, 1)
            ),
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


def _flag(env: Mapping[str, str], name: str, fallback: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return fallback
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _read_api_keys(env: Mapping[str, str]) -> frozenset[str]:
    keys = {k.strip() for k in env.get("API_KEYS", "").split(",") if k.strip()}
    path = env.get("API_KEYS_FILE", "").strip()
    if path:
        try:
            content = Path(path).read_text()
        except OSError as exc:
            raise SettingsError(f"API_KEYS_FILE {path!r} cannot be read: {exc.strerror}") from None
        # One key per line or comma-separated (as the chart's Secret holds them), or both.
        keys.update(k.strip() for k in content.replace(",", "\n").splitlines() if k.strip())
    return frozenset(keys)
