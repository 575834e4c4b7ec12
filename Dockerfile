# rd-connector: `docker build -t rd-connector .` then `docker run --env-file connector.env rd-connector`
# (default command `run`; `check`, `mock-rd`, `produce-sample` work too). Two stages: the wheel is built
# in the first, only the installed package reaches the final image (no build tools, no pip cache).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY schemas ./schemas
# Runtime dependencies only: no dev tools and no embedded test broker (the `embedded` extra).
RUN pip install --no-cache-dir --no-compile --prefix=/install .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="rd-connector" \
      org.opencontainers.image.description="Kafka -> RD Station Marketing connector"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RDC_METRICS_PORT=9464
COPY --from=build /install /usr/local
RUN groupadd --system --gid 10001 rdc \
 && useradd --system --uid 10001 --gid rdc --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rdc
USER 10001:10001
# /metrics, /healthz, /readyz
EXPOSE 9464
# slim has no curl: ask /healthz with the standard library (the loop beat recently = alive).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request as u; port=os.environ.get('RDC_METRICS_PORT') or '9464'; sys.exit(0 if u.urlopen('http://127.0.0.1:'+port+'/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["rd-connector"]
CMD ["run"]
