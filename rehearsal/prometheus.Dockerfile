# Prometheus for the rehearsal of the chart's standalone monitoring mode: Debian's `prometheus`
# package on the local base image (no registry here to pull quay.io/prometheus/prometheus from).
# Like the official image it runs /bin/prometheus (merged /usr) as nobody and takes the chart's arguments.
ARG BASE_IMAGE=mlops-platform/debian-python:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \
    && mkdir -p /prometheus && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
