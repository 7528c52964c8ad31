"""The simple JSON API, compatible with the original platform: /predict, /health, /ready, ..."""

import asyncio
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from server.auth import ApiKeys
from server.errors import ModelNotReady
from server.inputs import parse_json, simple_batch
from server.metrics import Metrics
from server.model_manager import Serving
from server.routing import TemplatedRoute
from server.settings import Settings
from server.web import JSONResponse, read_json_body


def simple_routes(
    settings: Settings, serving: Serving, metrics: Metrics, keys: ApiKeys
) -> list[TemplatedRoute]:
    max_body, max_batch = settings.max_body_bytes, settings.max_batch

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def ready(request: Request) -> Response:
        if serving.ready:
            return JSONResponse({"status": "ready", "model_loaded": True})
        reason = "shutting down" if serving.draining else serving.champion.status
        loaded = serving.champion.model is not None
        return JSONResponse(
            {"status": "not ready", "model_loaded": loaded, "reason": reason}, status_code=503
        )

    async def predict(request: Request) -> Response:
        keys.check(request)
        body = await read_json_body(request, max_body)
        model, slot = serving.pick(request.headers.get("x-request-id"))
        rows, single = simple_batch(parse_json(body), model, max_batch)
        result = model.predict(rows)
        bound = slot.bound
        assert bound is not None
        bound.inference.observe(result.seconds)  # type: ignore[attr-defined]
        if result.class_indices is not None:
            answers = result.class_indices
            if single:
                index = int(answers[0])
                bound.class_counters[index].inc()  # type: ignore[attr-defined]
                body_out: dict[str, Any] = {
                    "prediction": model.classes[index],
                    "confidence": float(result.confidences[0]),  # type: ignore[index]
                }
            else:
                for index, count in enumerate(np.bincount(answers, minlength=len(model.classes))):
                    if count:
                        bound.class_counters[index].inc(int(count))  # type: ignore[attr-defined]
                confidences = result.confidences
                assert confidences is not None
                body_out = {
                    "predictions": [
                        {"prediction": model.classes[i], "confidence": float(c)}
                        for i, c in zip(answers.tolist(), confidences.tolist(), strict=True)
                    ]
                }
        else:
            answers = result.values  # type: ignore[assignment]
            bound.class_counters[0].inc(len(answers))  # type: ignore[attr-defined]
            if single:
                body_out = {"prediction": float(answers[0])}
            else:
                body_out = {"predictions": [{"prediction": v} for v in answers.tolist()]}
        body_out["model_version"] = model.version
        body_out["inference_time_ms"] = round(result.seconds * 1000, 4)
        if slot is serving.champion and serving.drift is not None:
            serving.drift.record(rows, answers)
        if serving.shadow:
            asyncio.get_running_loop().call_soon(serving.shadow_score, rows, answers)
        return JSONResponse(body_out, headers={"x-model-version": model.version})

    async def model_info(request: Request) -> Response:
        model = serving.champion.model
        if model is None:
            raise ModelNotReady(f"no model loaded yet: {serving.champion.status}")
        info = model.info()
        info["variant"] = "champion"
        challenger = serving.challenger
        if challenger is not None:
            info["challenger"] = {
                "mode": settings.challenger_mode,
                "traffic": settings.challenger_traffic,
                **(challenger.model.info() if challenger.model else {"status": challenger.status}),
            }
        return JSONResponse(info)

    async def drift(request: Request) -> Response:
        if serving.champion.model is None:
            raise ModelNotReady(f"no model loaded yet: {serving.champion.status}")
        report = serving.update_drift_metrics()
        if report is None:
            return JSONResponse(
                {"status": "unavailable", "reason": "the model carries no drift reference"}
            )
        return JSONResponse(report)

    async def metrics_endpoint(request: Request) -> Response:
        content, media_type = metrics.exposition()
        return Response(content, media_type=media_type)

    return [
        TemplatedRoute("/health", health, methods=["GET"]),
        TemplatedRoute("/ready", ready, methods=["GET"]),
        TemplatedRoute("/predict", predict, methods=["POST"]),
        TemplatedRoute("/model/info", model_info, methods=["GET"]),
        TemplatedRoute("/drift", drift, methods=["GET"]),
        TemplatedRoute("/metrics", metrics_endpoint, methods=["GET"]),
    ]
