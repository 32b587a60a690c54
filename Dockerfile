# One image for every errstream role (migrate, worker, sink, notify, gateway, CLI).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY errstream_core errstream_core
COPY producers producers
COPY stream_processors stream_processors
COPY sinks sinks
COPY reports reports
COPY errstream errstream
# pipeline = worker, sinks, notify, reports and the gateway (no chDB: compose runs a ClickHouse server)
RUN pip install --no-cache-dir '.[pipeline]'
ENTRYPOINT ["errstream"]
