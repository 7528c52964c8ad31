# The training image: this repository's `training/` and `server/` packages with the locked `train`
# dependency group (MLflow, scikit-learn, SciPy, ONNX), as UID/GID 10001, read-only root filesystem
# friendly (HOME and TMPDIR are /tmp). The chart's judge CronJob runs `python -m training.judge`
# in it; `python -m training`, `training.retrain` and `training.lifecycle` work the same way.
#
#   docker build -f docker/training.Dockerfile -t mlops-model-training .     # official slim base
#   docker build -f docker/training.Dockerfile --build-arg BASE_IMAGE=<local base> \
#                -t mlops-model-training .                              # `make image-training`
#
# The same base, uv and lock handling as the server's Dockerfile; no BuildKit-only syntax, so
# Debian's engine builds it with the classic builder too.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

# ---- builder: the locked runtime and `train` dependencies in a virtual environment -------------
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
# The lock's [project].dependencies (training imports the server's contract, store and quality
# modules) plus the `train` group and nothing else (not `aws`, not `dev`), verified against its
# hashes.
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-default-groups --group train \
        --no-install-project --python python3 --quiet
# What neither training nor the lifecycle commands use: the libraries' test suites, MLflow's web
# UI bundle (the image runs MLflow's client, never its server), onnxruntime's offline
# model-optimisation tooling, source maps, Cython sources and C headers (numpy's Fortran wrapper
# generator stays: SciPy's array API layer imports all of numpy); the import checks here and
# after the packages are copied prove the rest is intact, and the image tests train and judge.
RUN cd /opt/venv/lib/python3*/site-packages \
    && find . -depth -type d -name tests -exec rm -rf {} + \
    && find . \( -name '*.js.map' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \
        -o -name '*.h' \) -delete \
    && rm -rf numpy/_core/include mlflow/server/js/build \
        onnxruntime/transformers onnxruntime/quantization onnxruntime/tools \
        onnxruntime/datasets /opt/venv/bin/onnxruntime_test \
    && /opt/venv/bin/python -c "import mlflow, mlflow.tracking, scipy.stats, sklearn.ensemble, onnx, skl2onnx, onnxruntime, pandas, pg8000"

COPY server/ /app/server/
COPY training/ /app/training/
# unchecked-hash: the .pyc files stay valid whatever mtimes the copy into the runtime stage keeps.
RUN python3 -m compileall -q --invalidation-mode unchecked-hash /app \
    && cd /app && /opt/venv/bin/python -c "import training.judge, training.retrain, training.lifecycle, training.cli, training.export, training.registration, training.onnx_export"

# ---- runtime: the environment and the two packages; nothing else -------------------------------
FROM ${BASE_IMAGE} AS runtime

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

# PYTHONPATH: `python -m training.judge` works from any working directory a Job sets.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

WORKDIR /app
USER 10001:10001
# No entrypoint: a Job's `command` runs as written; alone, the image prints the judge's options.
CMD ["python", "-m", "training.judge", "--help"]

# Last, so a new revision only rewrites the image config, never a layer.
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="mlops-model-training" \
      org.opencontainers.image.description="Training and the model lifecycle commands (judge, retrain, promote, rollback): MLflow client, scikit-learn, SciPy" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
