# IAPO proxy: a slim image that runs `iapo serve` on the embedded simulated upstream by default.
# Mount your own config with: docker run -v $PWD/config.yaml:/app/config.yaml -p 8000:8000 iapo
# The port served (and health-checked) is $IAPO_PORT, not server.port: docker run -e IAPO_PORT=9000
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    IAPO_PORT=8000

WORKDIR /app

# The package and its dependencies (from pyproject.toml); the source stays in /app because
# config.yaml's relative paths (task sets under proxy/data, policies/) resolve against /app.
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip install . && useradd --create-home --uid 10001 iapo

COPY config.yaml ./
COPY policies ./policies

USER iapo
EXPOSE 8000

# slim has no curl: ask /health with the standard library, on the port CMD serves.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['IAPO_PORT'], timeout=2).status == 200 else 1)"]

CMD ["sh", "-c", "exec iapo serve --host 0.0.0.0 --port \"$IAPO_PORT\""]
