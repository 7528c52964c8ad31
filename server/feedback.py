"""Ground truth in, live quality out: POST /feedback, GET /quality and their metrics.

Feedback names a prediction by the request id it answered with (X-Request-ID) and, for a batch,
the row index; any replica can take feedback for any replica's prediction, since both read the
shared store. Live quality joins recorded predictions with their feedback over a time window,
per model version and variant (the shadow challenger counted as `challenger`), and is
recomputed off the event loop every QUALITY_INTERVAL_SECONDS.
"""

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge
from starlette.requests import Request
from starlette.responses import Response

from server import quality
from server.auth import INFERENCE, METADATA
from server.dataplane import CHALLENGER, CHAMPION, DataPlane
from server.errors import SIMPLE, InvalidInput, NotFound, PayloadTooLarge, ServerError
from server.inputs import parse_json
from server.metrics import Metrics
from server.model import Model
from server.recording import sampled
from server.routes import Answer, Route
from server.settings import Settings
from server.store import Connection, FeedbackRow, PredictionStore, StoreError
from server.web import JSONResponse, read_json_body

log = logging.getLogger("server.feedback")
T = TypeVar("T")
_MAX_ID = 128
_MAX_LABEL = 200
_FRESH_SECONDS = 1.0  # GET /quality answers from a report at most this old


class StoreUnavailable(ServerError):
    """The prediction store could not be reached; nothing was written."""

    status_code = 503


@dataclass(frozen=True)
class FeedbackItem:
    request_id: str
    row: int
    label: str | None
    value: float | None


def parse_feedback(payload: Any, max_rows: int) -> list[FeedbackItem]:
    """One item (`{"request_id", "row"?, "label" | "value"}`) or `{"feedback": [items]}`."""
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object")
    if "feedback" in payload:
        raw = payload["feedback"]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput("feedback must be a non-empty list of items")
        if len(raw) > max_rows:
            raise PayloadTooLarge(f"{len(raw)} feedback items; the limit is {max_rows}")
        return [_item(entry, f"feedback[{i}]") for i, entry in enumerate(raw)]
    return [_item(payload, "the body")]


def _item(entry: Any, where: str) -> FeedbackItem:
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where} must be an object")
    unknown = set(entry) - {"request_id", "row", "label", "value"}
    if unknown:
        raise InvalidInput(f"{where} has unknown field {sorted(unknown)[0][:_MAX_LABEL]!r}")
    request_id = entry.get("request_id")
    if not (
        isinstance(request_id, str)
        and 0 < len(request_id) <= _MAX_ID
        and request_id.isascii()
        and request_id.isprintable()
        and " " not in request_id
    ):
        raise InvalidInput(f"{where}.request_id must be the X-Request-ID of a prediction")
    row = entry.get("row", 0)
    if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < 1_000_000:
        raise InvalidInput(f"{where}.row must be the row's index in its batch (0 for one row)")
    label, value = entry.get("label"), entry.get("value")
    if (label is None) == (value is None):
        raise InvalidInput(f"{where} needs exactly one of label (a class) or value (a number)")
    if label is not None and not (isinstance(label, str) and 0 < len(label) <= _MAX_LABEL):
        raise InvalidInput(f"{where}.label must be a class name")
    if value is not None and not (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ):
        raise InvalidInput(f"{where}.value must be a finite number")
    return FeedbackItem(request_id, row, label, None if value is None else float(value))


class StoreReader:
    """One connection for the API's own reads and feedback writes, one worker thread at a time."""

    def __init__(self, store: PredictionStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        # One thread of its own: store calls never queue behind (or hold up) the model loader's
        # threads, and at most one more thread's memory is spent on them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-reader")

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` (which calls `call`) on the reader's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def call(self, work: Callable[[PredictionStore, Connection], T]) -> T:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self.store.connect()
                return work(self.store, self._connection)
            except StoreError as exc:
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        self._connection.close()
                self._connection = None
                raise StoreUnavailable(f"the prediction store is unavailable: {exc}") from exc

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
                self._connection = None


class QualityMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        by_metric = ("model_version", "variant", "metric")
        self.value = Gauge(
            "model_live_quality",
            "Live quality over the window: accuracy and f1_macro, or mae and rmse.",
            by_metric,
            registry=r,
        )
        self.lower = Gauge(
            "model_live_quality_lower", "Lower bound of its 95% interval.", by_metric, registry=r
        )
        self.upper = Gauge(
            "model_live_quality_upper", "Upper bound of its 95% interval.", by_metric, registry=r
        )
        self.labels = Gauge(
            "model_live_labels",
            "Labelled predictions behind the live quality figures, over the window.",
            ("model_version", "variant"),
            registry=r,
        )
        self.heldout = Gauge(
            "model_heldout_quality",
            "The loaded model's quality on its held-out data, from training.",
            by_metric,
            registry=r,
        )
        self.margin = Gauge(
            "model_quality_margin",
            "QUALITY_MARGIN: the share of the held-out figure live quality may fall short by.",
            registry=r,
        )
        self.min_labels = Gauge(
            "model_quality_min_labels",
            "QUALITY_MIN_LABELS: labels needed before live quality can raise an alert.",
            registry=r,
        )
        self.feedback = Counter(
            "feedback_rows_total",
            "Feedback items received, by outcome (accepted, unknown, sampled_out).",
            ("outcome",),
            registry=r,
        )
        for outcome in ("accepted", "unknown", "sampled_out"):
            self.feedback.labels(outcome)


def heldout_figures(model: Model) -> dict[str, float]:
    """The live metrics' held-out values, from the model's training metadata."""
    found = model.contract.metrics
    names = quality.CLASSIFIER_METRICS if model.is_classifier else quality.REGRESSOR_METRICS
    return {n: float(found[n]) for n in names if isinstance(found.get(n), int | float)}


def falls_short(metric: str, estimate: quality.Estimate, heldout: float, margin: float) -> bool:
    """Whether the whole 95% interval is worse than the held-out figure by more than `margin`."""
    if quality.HIGHER_IS_BETTER[metric]:
        return estimate.upper < heldout * (1 - margin)
    return estimate.lower > heldout * (1 + margin)


class LiveQuality:
    """Feedback intake and the live quality report, over one store reader."""

    def __init__(
        self, settings: Settings, plane: DataPlane, reader: StoreReader, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.plane = plane
        self.reader = reader
        self.metrics = QualityMetrics(metrics)
        self.metrics.margin.set(settings.quality_margin)
        self.metrics.min_labels.set(settings.quality_min_labels)
        self._report: dict[str, Any] | None = None
        self._report_at = 0.0

    # --- feedback ---------------------------------------------------------------------------

    def accept(self, items: list[FeedbackItem]) -> dict[str, Any]:
        """Store the feedback for recorded predictions; say which items matched none. Thread."""
        latest: dict[tuple[str, int], FeedbackItem] = {}
        for item in items:  # the same prediction twice in one body: the last one counts
            latest[(item.request_id, item.row)] = item
        found = self.reader.call(lambda store, c: store.find_predictions(c, latest))
        champion = self.plane.champion.model if self.plane.champion is not None else None
        rows: list[FeedbackRow] = []
        unknown: list[dict[str, Any]] = []
        now = time.time()
        rate = self.settings.record_sample_rate
        for key, item in latest.items():
            stored = found.get(key)
            if stored is None:
                outside = not sampled(item.request_id.encode(), rate)
                unknown.append(
                    {
                        "request_id": item.request_id,
                        "row": item.row,
                        "reason": (
                            f"not recorded: RECORD_SAMPLE_RATE is {rate:g} and this request id "
                            "is outside the sample"
                            if outside
                            else "no recorded prediction with this request id and row (not "
                            "written yet, past the retention, or never made)"
                        ),
                    }
                )
                self.metrics.feedback.labels("sampled_out" if outside else "unknown").inc()
                continue
            where = f"feedback for {item.request_id!r} row {item.row}"
            if stored.is_classifier and item.label is None:
                raise InvalidInput(f"{where}: the prediction is a class; send label")
            if not stored.is_classifier and item.value is None:
                raise InvalidInput(f"{where}: the prediction is a number; send value")
            if (
                item.label is not None
                and champion is not None
                and champion.name == stored.model_name
                and item.label not in champion.classes
            ):
                raise InvalidInput(
                    f"{where}: unknown label {item.label!r}; the classes are {champion.classes}"
                )
            rows.append((item.request_id, item.row, item.label, item.value, now))
        self.reader.call(lambda store, c: store.write_feedback(c, rows))
        self.metrics.feedback.labels("accepted").inc(len(rows))
        return {"accepted": len(rows), "unknown": unknown}

    # --- live quality -----------------------------------------------------------------------

    def compute(self) -> dict[str, Any] | None:
        """The live quality report from the store; None until a model is loaded. Thread."""
        if self.plane.champion is None:
            return None
        champion = self.plane.champion.model
        window = self.settings.quality_window_seconds
        now = time.time()
        since = now - window
        name = champion.name
        counts = self.reader.call(lambda s, c: s.prediction_counts(c, name, since))
        figures: dict[tuple[str, str], tuple[int, dict[str, quality.Estimate]]] = {}
        if champion.is_classifier:
            for key, cells in self.reader.call(lambda s, c: s.confusion(c, name, since)).items():
                figures[key] = (sum(cells.values()), quality.classification(cells))
        else:
            for key, sums in self.reader.call(lambda s, c: s.error_sums(c, name, since)).items():
                figures[key] = (sums.n, quality.regression(sums))
        heldout: dict[tuple[str, str], dict[str, float]] = {}
        for variant, choice in (
            (CHAMPION, self.plane.champion),
            (CHALLENGER, self.plane.challenger),
        ):
            if choice is not None and choice.model.name == name:
                heldout[(choice.model.version, variant)] = heldout_figures(choice.model)
        margin, needed = self.settings.quality_margin, self.settings.quality_min_labels
        primary = "accuracy" if champion.is_classifier else "mae"
        versions = []
        for key in sorted(set(counts) | set(figures) | set(heldout), key=_version_order):
            labels, estimates = figures.get(key, (0, {}))
            reference = heldout.get(key, {})
            short = (
                labels >= needed
                and primary in estimates
                and primary in reference
                and falls_short(primary, estimates[primary], reference[primary], margin)
            )
            predictions = counts.get(key, 0)
            versions.append(
                {
                    "model_version": key[0],
                    "variant": key[1],
                    "predictions": predictions,
                    "labels": labels,
                    "label_coverage": round(labels / predictions, 4) if predictions else None,
                    "quality": {m: e.as_dict() for m, e in estimates.items()},
                    "heldout": reference,
                    "below_heldout": short,
                }
            )
        return {
            "model": name,
            "task": champion.task,
            "window_seconds": window,
            "since": _iso(since),
            "computed_at": _iso(now),
            "margin": margin,
            "min_labels": needed,
            "versions": versions,
        }

    def publish(self, report: dict[str, Any] | None) -> None:
        """Set the gauges from a report; series of versions that left the window go."""
        self._report, self._report_at = report, time.monotonic()
        m = self.metrics
        for gauge in (m.value, m.lower, m.upper, m.labels, m.heldout):
            gauge.clear()
        if report is None:
            return
        for entry in report["versions"]:
            version, variant = entry["model_version"], entry["variant"]
            m.labels.labels(version, variant).set(entry["labels"])
            for metric, figures in entry["quality"].items():
                m.value.labels(version, variant, metric).set(figures["value"])
                m.lower.labels(version, variant, metric).set(figures["lower"])
                m.upper.labels(version, variant, metric).set(figures["upper"])
            for metric, value in entry["heldout"].items():
                m.heldout.labels(version, variant, metric).set(value)

    async def refresh(self) -> dict[str, Any] | None:
        report = await self.reader.run(self.compute)
        self.publish(report)
        return report

    async def report(self) -> dict[str, Any] | None:
        """The report, recomputed unless one is fresh (a cap on what GET /quality can cost)."""
        if self._report is not None and time.monotonic() - self._report_at < _FRESH_SECONDS:
            return self._report
        return await self.refresh()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.quality_interval_seconds)
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                log.warning("live quality not updated", extra={"error": exc.detail})
            except Exception:  # quality reporting must never take serving down with it
                log.exception("live quality computation failed")


def _version_order(key: tuple[str, str]) -> tuple[int, str, str]:
    version, variant = key
    return (int(version) if version.isdigit() else -1, version, variant)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def openapi_schemas() -> dict[str, Any]:
    """The component schemas of POST /feedback and GET /quality, for the OpenAPI document."""
    item = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": _MAX_ID,
                "pattern": "^[\\x21-\\x7e]+$",
            },
            "row": {"type": "integer", "minimum": 0, "maximum": 999_999, "default": 0},
            "label": {"type": "string", "minLength": 1, "maxLength": _MAX_LABEL},
            "value": {"type": "number"},
        },
        "required": ["request_id"],
        "oneOf": [{"required": ["label"]}, {"required": ["value"]}],
        "description": "Exactly one of label (a class) or value (a regressor's number).",
    }
    unknown = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "row": {"type": "integer"},
            "reason": {"type": "string"},
        },
    }
    return {
        "FeedbackRequest": {
            "oneOf": [
                item,
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"feedback": {"type": "array", "items": item, "minItems": 1}},
                    "required": ["feedback"],
                },
            ],
            "example": {"request_id": "order-4711", "label": "setosa"},
        },
        "FeedbackAnswer": {
            "type": "object",
            "properties": {
                "accepted": {"type": "integer"},
                "unknown": {"type": "array", "items": unknown},
                "detail": {"type": "string"},
            },
            "required": ["accepted", "unknown"],
        },
        "Quality": {
            "type": "object",
            "properties": {
                "model": {"type": "string"},
                "task": {"type": "string"},
                "window_seconds": {"type": "number"},
                "versions": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["model", "versions"],
        },
    }


def feedback_routes(settings: Settings, plane: DataPlane, live: LiveQuality | None) -> list[Route]:
    """POST /feedback and GET /quality (404 with the reason when recording is off)."""
    max_body, max_rows = settings.max_body_bytes, settings.feedback_max_rows

    def enabled() -> LiveQuality:
        if live is None:
            raise NotFound("feedback and live quality are off: RECORD_PREDICTIONS=false")
        return live

    async def feedback(request: Request) -> Response:
        body = await read_json_body(request, max_body)
        loop = enabled()
        items = parse_feedback(parse_json(body), max_rows)
        result = await loop.reader.run(lambda: loop.accept(items))
        if result["accepted"] == 0:
            detail = "no recorded prediction matches this feedback"
            return JSONResponse({"detail": detail, **result}, status_code=404)
        return JSONResponse(result)

    async def quality_report(request: Request) -> Response:
        loop = enabled()
        plane.champion_model  # noqa: B018 - raises ModelNotReady when nothing is served
        report = await loop.report()
        if report is None:
            plane.champion_model  # noqa: B018 - the model went away while the report ran
        return JSONResponse(report)

    return [
        Route(
            "POST", "/feedback", feedback, SIMPLE,
            "Ground truth for earlier predictions, by request id and row",
            answers={
                200: Answer("FeedbackAnswer", "Stored; items matching no prediction listed"),
                404: Answer("FeedbackAnswer", "No item matched a recorded prediction")
                if live is not None
                else Answer(SIMPLE.error_schema, "Recording is off (RECORD_PREDICTIONS=false)"),
            },
            body="FeedbackRequest", errors=(400, 408, 413, 415, 422), group=INFERENCE,
        ),
        Route(
            "GET", "/quality", quality_report, SIMPLE,
            "Live quality per model version and variant, with 95% intervals",
            answers={
                200: Answer("Quality", "The live quality report"),
                404: Answer(SIMPLE.error_schema, "Recording is off (RECORD_PREDICTIONS=false)"),
            },
            group=METADATA,
        ),
    ]  # fmt: skip
