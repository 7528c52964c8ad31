# The platform's MLflow image: the tracking server and model registry at the version uv.lock pins,
# with what the official image (`pip install mlflow`, nothing else) lacks and the platform uses:
# Flask-WTF for basic auth, the PostgreSQL driver for an external database, boto3 for S3 artifacts
# and prometheus-flask-exporter for /metrics. The Compose stack runs it as it is (SQLite and
# proxied artifacts in the /mlflow volume); the Helm chart runs it with its own command and user.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}

ARG MLFLOW_VERSION=3.17.2
ARG FLASK_WTF_VERSION=1.3.0
ARG PSYCOPG2_VERSION=2.9.13
ARG BOTO3_VERSION=1.44.8
ARG PROMETHEUS_FLASK_EXPORTER_VERSION=0.23.2
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# uv (removed again in the same step) installs several times faster than pip.
RUN python3 -m venv /opt/mlflow \
    && /opt/mlflow/bin/pip install --quiet uv \
    && UV_NO_CACHE=1 /opt/mlflow/bin/uv pip install --quiet --compile-bytecode \
        --python /opt/mlflow/bin/python "mlflow[auth]==${MLFLOW_VERSION}" \
        "flask-wtf==${FLASK_WTF_VERSION}" "psycopg2-binary==${PSYCOPG2_VERSION}" \
        "boto3==${BOTO3_VERSION}" "prometheus-flask-exporter==${PROMETHEUS_FLASK_EXPORTER_VERSION}" \
    && /opt/mlflow/bin/pip uninstall --quiet --yes uv \
    && /opt/mlflow/bin/python -c "import flask_wtf, psycopg2, boto3, prometheus_flask_exporter" \
    && groupadd --system --gid 10002 mlflow \
    && useradd --system --uid 10002 --gid 10002 --home-dir /mlflow --no-create-home mlflow \
    && mkdir /mlflow \
    && chown 10002:10002 /mlflow

ENV PATH=/opt/mlflow/bin:$PATH HOME=/mlflow
USER 10002:10002
WORKDIR /mlflow
VOLUME /mlflow
EXPOSE 5000
# --allowed-hosts: the API reaches it as mlflow:5000, the host through whichever port is published.
ENTRYPOINT ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", \
    "--backend-store-uri", "sqlite:////mlflow/mlflow.db", \
    "--artifacts-destination", "/mlflow/artifacts", "--serve-artifacts", \
    "--allowed-hosts", "mlflow,mlflow:*,localhost,localhost:*,127.0.0.1,127.0.0.1:*"]
