# eventcollab: one image for every module; `--modules` picks which ones a container runs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data

# a fixed numeric uid, so Kubernetes' runAsNonRoot can check it without a name lookup
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && install -d -o app -g app /data

# .dockerignore lets in only pyproject.toml, README.md and app/; the source is removed once installed,
# so `python -m app` runs the installed package
COPY . /src
RUN pip install /src && rm -rf /src

WORKDIR /data
USER 10001:10001
EXPOSE 8000

# Docker and Compose use this; Kubernetes ignores it and uses the chart's probes
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health/live', timeout=2)"]

CMD ["python", "-m", "app", "--host", "0.0.0.0"]
