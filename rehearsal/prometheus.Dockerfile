# Prometheus for the rehearsal of the chart's standalone monitoring mode: Debian's `prometheus`
# package on the local base image (no registry here to pull quay.io/prometheus/prometheus from).
# From trixie (2.53): bookworm's 2.42 predates basic_auth.username_file, which the chart's scrape
# of MLflow uses; apt pins trixie low, so only prometheus and what it needs come from there.
# Like the official image it runs /bin/prometheus (merged /usr) as nobody and takes the chart's arguments.
ARG BASE_IMAGE=mlops-platform/debian-python:bookworm
FROM ${BASE_IMAGE}
RUN echo "deb http://deb.debian.org/debian trixie main" > /etc/apt/sources.list.d/trixie.list \
    && printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends -t trixie prometheus \
    && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \
    && mkdir -p /prometheus && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
