# Built only to measure, never published: the server image the way the original platform built it,
# one stage whose runtime installs full MLflow and scikit-learn beside the server's dependencies.
# Same base and same locked versions as ours, and no pip cache, so the size difference is only
# what the two-stage build leaves out. scripts/image-sizes.sh builds it from a throwaway context
# holding requirements.txt (runtime + mlflow + scikit-learn, exported from uv.lock) and server/.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}

ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY requirements.txt /tmp/requirements.txt
# uv only installs faster: with --compile-bytecode it leaves the files pip would (same size to
# 0.1%), and it leaves the image in the same step.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet uv \
    && UV_NO_CACHE=1 /opt/venv/bin/uv pip install --quiet --compile-bytecode \
        --python /opt/venv/bin/python --require-hashes -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --quiet --yes uv \
    && rm /tmp/requirements.txt

COPY server/ /app/server/
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
EXPOSE 8000
CMD ["python", "-m", "server"]
