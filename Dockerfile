# One image for every errstream role (migrate, worker, sink, notify, gateway, web, CLI).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
# The versions `make setup` installs: an image built next month holds what CI tested today.
COPY requirements/lock.txt requirements/lock.txt
COPY schemas schemas
COPY errstream_core errstream_core
COPY producers producers
COPY stream_processors stream_processors
COPY sinks sinks
COPY reports reports
COPY errstream errstream
# web = the pipeline (worker, sinks, notify, reports, gateway) and the web app (no chDB: compose runs a
# ClickHouse server)
RUN PIP_CONSTRAINT=/app/requirements/lock.txt pip install --no-cache-dir '.[web]'
ENTRYPOINT ["errstream"]
