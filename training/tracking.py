"""Where MLflow lives: MLFLOW_TRACKING_URI when set, else the embedded local store in .mlflow/."""

import logging
import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from training.errors import TrainingError

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_STORE = REPO_ROOT / ".mlflow"
_CONNECT_TIMEOUT_SECONDS = 5.0


def tracking_uri() -> str:
    """The tracking URI in force: the environment's, or the local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{LOCAL_STORE / 'mlflow.db'}"


def artifact_root(uri: str) -> str | None:
    """For a SQLite store, artifacts live beside the database; a server decides for itself."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()


def quiet_mlflow() -> None:
    """Keep MLflow's informational chatter out of the command-line output."""
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    # MLflow's input example is a DataFrame with feature names; the forest was fit on arrays.
    warnings.filterwarnings("ignore", message="X has feature names")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def redacted(uri: str, mask: str = "***@") -> str:
    """The URI with any user name and password replaced by `***`, fit for messages."""
    scheme, separator, rest = uri.partition("://")
    authority, slash, path = rest.partition("/")
    if not separator or "@" not in authority:
        return uri
    return f"{scheme}://{mask}{authority.rpartition('@')[2]}{slash}{path}"


def check_store(uri: str) -> None:
    """Fail fast, with one line, if a tracking server is unreachable; MLflow is not imported."""
    if uri.startswith(("http://", "https://")):
        _check_reachable(uri)
    elif uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def through_the_server_only() -> None:
    """Keep every artifact transfer on the tracking server's proxy.

    A server whose artifacts live in S3 (or another cloud store) tells MLflow's client that it
    may fetch and upload files straight from the bucket with presigned URLs; the client would
    then need a route to the bucket, and its chunked downloads hang on small files. Training and
    the lifecycle commands talk only to MLflow. Setting either variable yourself overrides this.
    """
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "false")


def connect() -> str:
    """Point the MLflow client at the store and fail fast, with one line, if it is unreachable."""
    import mlflow

    uri = tracking_uri()
    check_store(uri)
    if uri.startswith(("http://", "https://")):
        through_the_server_only()
    quiet_mlflow()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _check_reachable(uri: str) -> None:
    try:
        # The caller checked the scheme: http(s) only. /health needs no credentials.
        health = f"{redacted(uri, mask='').rstrip('/')}/health"
        with urllib.request.urlopen(health, timeout=_CONNECT_TIMEOUT_SECONDS):  # noqa: S310
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (
            401,
            403,
        ):  # reachable; the credentials are checked by the calls that follow
            return
        raise TrainingError(
            f"MLflow tracking server at {redacted(uri)} answered {exc.code}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrainingError(
            f"cannot reach the MLflow tracking server at {redacted(uri)}: {reason}"
        ) from exc
