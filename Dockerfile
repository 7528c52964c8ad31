# The model server image: `python -m server` on port 8000 as UID/GID 10001, read-only root
# filesystem friendly (writes only /tmp), with an optional fallback model baked in at /opt/model.
#
#   docker build -t mlops-model-server .                          # official slim base (published)
#   docker build --build-arg BASE_IMAGE=<local base> \
#                --build-arg FALLBACK_MODEL=build/model -t mlops-model-server .    # `make image`
#
# Any BASE_IMAGE works that has python3 (3.11+) with venv and CA certificates on PATH; the official
# image is multi-arch, so the same file builds for linux/amd64 and linux/arm64.
# No BuildKit-only syntax: Debian's engine builds this with the classic builder too.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

# ---- builder: the locked runtime dependencies in a virtual environment -------------------------
FROM ${BASE_IMAGE} AS builder

ARG UV_VERSION=0.13.8
# The system CA bundle, so pip and uv also work behind a TLS-intercepting proxy whose CA the base
# trusts; no caches, no interpreter downloads, bytecode compiled ahead (the runtime cannot write it).
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv

RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"

WORKDIR /src
COPY pyproject.toml uv.lock ./
# Exactly the lock's [project].dependencies (no dependency groups), verified against its hashes.
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-default-groups --no-install-project \
        --python python3 --quiet
# What only developers of these libraries use: their test suites, onnxruntime's offline
# model-optimisation tooling, Swagger UI's source maps and the bundles /docs does not load (it
# loads swagger-ui-bundle.js and swagger-ui.css), Cython sources and C headers, numpy's Fortran
# wrapper generator (about 35 MB); the import check proves the runtime is intact, and the image
# tests load /docs.
RUN cd /opt/venv/lib/python3*/site-packages \
    && find . -depth -type d -name tests -exec rm -rf {} + \
    && find . \( -name '*.js.map' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \
        -o -name '*.h' \) -delete \
    && rm -rf numpy/f2py numpy/_core/include \
    && cd swagger_ui_bundle/vendor/swagger-ui-* \
    && rm -f swagger-ui-es-bundle.js swagger-ui-es-bundle-core.js swagger-ui-standalone-preset.js \
        swagger-ui.js swagger-ui.css.map \
    && cd /opt/venv/lib/python3*/site-packages \
    && rm -rf onnxruntime/transformers onnxruntime/quantization onnxruntime/tools \
        onnxruntime/datasets /opt/venv/bin/onnxruntime_test \
    && /opt/venv/bin/python -c "import numpy, onnxruntime, starlette, uvicorn, uvloop, httptools, hpack, google.protobuf"

COPY server/ /app/server/
COPY docker/healthcheck.py /app/healthcheck.py
# unchecked-hash: the .pyc files stay valid whatever mtimes the copy into the runtime stage keeps.
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /app

# ---- runtime: the environment, the server package and the model; nothing else ----------------
FROM ${BASE_IMAGE} AS runtime

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
# An exported model directory inside the build context; the default is a directory holding only
# a README, which the server treats as "no fallback".
ARG FALLBACK_MODEL=docker/no-model
COPY ${FALLBACK_MODEL}/ /opt/model/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    HOST=0.0.0.0 \
    PORT=8000 \
    MODEL_FALLBACK_PATH=/opt/model \
    PREDICTION_STORE_URI=sqlite:////tmp/predictions.db

WORKDIR /app
USER 10001:10001
# 8001: the Open Inference Protocol over gRPC, when GRPC_PORT=8001 turns it on (off by default).
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
# Exec form: the server is PID 1 and receives SIGTERM from `docker stop` itself.
ENTRYPOINT ["python", "-m", "server"]

# Last, so a new revision only rewrites the image config, never a layer.
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="mlops-model-server" \
      org.opencontainers.image.description="ONNX model server: Starlette + onnxruntime, models from MLflow" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
