# One image for every meshgate process of the demo cluster (compose.yaml):
# registry, health checker, canary controller, gateway replicas and the demo
# services; each container picks its process with its command, e.g.
#   docker run --rm meshgate:local gateway --config /etc/meshgate/gateway.toml

# Build the wheel in a stage of its own, so the runtime image holds neither
# the source tree nor the build tools.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# `fast` brings httptools, which the gateway's HTTP layer needs, and uvloop.
RUN pip install --no-cache-dir "$(ls /wheels/meshgate-*.whl)[fast]" \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin meshgate
USER meshgate
# Ports the cluster uses: gateway 8080, admin API 9090, demo services 3001-3007.
EXPOSE 8080 9090 3001-3007
ENTRYPOINT ["meshgate"]
CMD ["--help"]
