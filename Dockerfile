# rd-connector: `make image` (docker or podman), then `docker run --env-file connector.env rd-connector`
# (default command `run`; `check`, `mock-rd`, `produce-sample` work too). Two stages: the first builds the
# wheel and installs it into a virtual environment; only that environment reaches the final image (no
# build tools, no source tree, no pip cache). The image runs what `pip install rd-connector` gives users.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY connector ./connector
COPY schemas ./schemas
# Runtime dependencies only: no dev tools and no embedded test broker (the `embedded` extra).
RUN python -m venv /opt/rd-connector \
 && /opt/rd-connector/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/rd-connector/bin/pip install --no-cache-dir /wheels/rd_connector-*.whl \
 && /opt/rd-connector/bin/pip uninstall --yes pip \
 && find /opt/rd-connector -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
LABEL org.opencontainers.image.title="rd-connector" \
      org.opencontainers.image.description="Kafka -> RD Station Marketing connector" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/rd-connector/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RDC_METRICS_PORT=9464
COPY --from=build /opt/rd-connector /opt/rd-connector
RUN groupadd --gid 10001 rdc \
 && useradd --uid 10001 --gid rdc --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rdc
USER 10001:10001
# /metrics, /healthz, /readyz
EXPOSE 9464
# slim has no curl: ask /healthz with the standard library (the loop beat recently = alive). With
# RDC_METRICS_PORT=0 there is no endpoint to ask, so the check passes: liveness is then the process itself.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request as u; port=os.environ.get('RDC_METRICS_PORT') or '9464'; sys.exit(0 if port == '0' else (0 if u.urlopen('http://127.0.0.1:'+port+'/healthz', timeout=2).status == 200 else 1))"]
# Exec form: rd-connector is PID 1 and receives SIGTERM itself (`docker stop`, Kubernetes); it drains,
# commits what settled and exits 0. Its only children are its decode worker, which it stops and reaps.
ENTRYPOINT ["rd-connector"]
CMD ["run"]
