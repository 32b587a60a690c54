# One image for every errstream role (worker, sink, gateway, CLI).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY producers producers
COPY stream_processors stream_processors
COPY sinks sinks
COPY errstream errstream
RUN pip install --no-cache-dir .
ENTRYPOINT ["errstream"]
