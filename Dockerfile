# eventcollab: one image for every module; MODULES (or `--modules`) picks which ones a container runs.
#
#   make image                       # picks the engine and the base, tags eventcollab:<version> and :latest
#   docker build -t eventcollab .    # by hand, where python:3.11-slim can be pulled
#
# BASE is any Debian-like image with python3 (3.11+) and its venv module: python:3.11-slim by default;
# where Docker Hub cannot be reached, deploy/build-image.sh makes one from Debian's packages with
# mmdebstrap (python3, python3-venv, ca-certificates) and passes it here.
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="eventcollab" \
      org.opencontainers.image.description="Event collaboration through a message broker: person, billing, orders and notifications as bounded contexts on a durable event bus" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE}"

# the address comes from HOST/PORT (app/config.py), so `docker run -e PORT=9000` moves it; no flag in
# CMD overrides them
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data

# a fixed numeric uid, so Kubernetes' runAsNonRoot can check it without a name lookup
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && install -d -o app -g app /data

# The lock first (its layer is reused while only app/ changes); --require-hashes: nothing but what the
# lock names, byte for byte. The otlp extra is in it: the chart may set OTEL_TRACES=otlp.
# PIP_CERT: the system's CA bundle, not pip's own, so a build behind a TLS-inspecting proxy works when
# the host's bundle is mounted over it (deploy/build-image.sh does).
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install -q --require-hashes -r /tmp/requirements.lock \
 && rm /tmp/requirements.lock

# .dockerignore lets in only pyproject.toml, README.md, the lock and app/; --no-deps: the lock already
# installed every dependency. The source is removed once installed: `python -m app` runs the package.
COPY . /src
RUN PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install -q --no-deps /src && rm -rf /src

WORKDIR /data
USER 10001:10001
EXPOSE 8000

# Docker and Compose use this; Kubernetes ignores it and uses the chart's probes
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health/live', timeout=2)"]

CMD ["python", "-m", "app"]
