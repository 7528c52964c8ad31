# MLflow tracking server and model registry for the local Compose stack (not published).
# SQLite and artifacts live in the /mlflow volume; artifacts are proxied, so clients need only HTTP.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}

ARG MLFLOW_VERSION=3.17.2
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# uv (removed again in the same step) installs several times faster than pip.
RUN python3 -m venv /opt/mlflow \
    && /opt/mlflow/bin/pip install --quiet uv \
    && UV_NO_CACHE=1 /opt/mlflow/bin/uv pip install --quiet --compile-bytecode \
        --python /opt/mlflow/bin/python "mlflow==${MLFLOW_VERSION}" \
    && /opt/mlflow/bin/pip uninstall --quiet --yes uv \
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
