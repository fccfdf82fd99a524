# The auditor as a container image: `auditor` is the entrypoint, so the container's arguments
# are a command line (`docker run IMAGE run --store /data/store ...`). Build from the
# repository root:   docker build -t codat-freshness-auditor .
# Runs as the unprivileged user "auditor" (uid 10001); /data is where the store and the
# reports go (mount a volume there). Secrets (CODAT_API_KEY, SMTP_*, AUDITOR_PUSHGATEWAY_URL)
# come from the environment at run time, never from the image. See docs/deploy.md.

# Stage 1: build the wheel (templates included), so no build tool reaches the runtime image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md config.example.toml ./
COPY auditor ./auditor
COPY templates ./templates
RUN python -m pip install --no-cache-dir --upgrade pip \
    && python -m pip wheel --no-cache-dir --wheel-dir /wheels .

# Stage 2: the runtime image.
FROM python:3.11-slim
LABEL org.opencontainers.image.title="codat-freshness-auditor" \
      org.opencontainers.image.description="Audit the data freshness of a fleet of Codat companies"
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 auditor \
    && useradd --system --uid 10001 --gid auditor --home-dir /data --no-create-home auditor \
    && mkdir -p /data \
    && chown auditor:auditor /data
# Logs as JSON lines, no progress bar; with WORKDIR /data the default store is /data/store
# and the default reports /data/reports/nightly (auditor run) or /data/reports (auditor audit).
ENV PYTHONUNBUFFERED=1 \
    AUDITOR_LOG_FORMAT=json \
    AUDITOR_PROGRESS=off
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
ENTRYPOINT ["auditor"]
CMD ["--help"]
