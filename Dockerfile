# The HappyHorse Discord bot. Build: `docker build -t happyhorse-bot .`; run it with
# compose.yaml (PostgreSQL beside it), or alone with an env file and a volume on /app/data.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # /healthz and /metrics, reachable by the health check and by a Prometheus container.
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9108

# A system user without a login shell or password owns the data folder; the code stays
# root-owned and read-only to it.
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin happyhorse

WORKDIR /app
COPY . /app

# Installed exactly as README's first command installs it (tests/deploy checks this line).
RUN python3 -m venv .venv && .venv/bin/pip install -e . \
    && mkdir -p /app/data && chown happyhorse:happyhorse /app/data

USER happyhorse
VOLUME ["/app/data"]
EXPOSE 9108

# 200 only while the gateway, the database and the scheduler are all healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD [".venv/bin/python", "deploy/healthcheck.py"]

# Exec form: the bot is PID 1 and receives SIGTERM itself (`docker stop`), then stops its
# loops and closes its sessions and the database; unfinished jobs resume at the next start.
STOPSIGNAL SIGTERM
CMD [".venv/bin/python", "bot.py"]
