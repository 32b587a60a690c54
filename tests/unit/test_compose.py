"""docker-compose.yml: the path for users with Docker must at least parse and wire the roles together."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_wires_kafka_clickhouse_workers_and_sink() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"kafka", "clickhouse", "migrate", "worker", "sink"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    for role in ("worker", "sink", "migrate"):
        assert services[role]["command"] == [role]
        assert services[role]["environment"]["ERRSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    # `--scale worker=N` needs a worker without a fixed name or host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    # No secret in the file: every password comes from the environment.
    for svc in services.values():
        for key, value in (svc.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{key} must come from the environment"


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose CLI on this machine")
def test_docker_compose_config_parses() -> None:
    cli = _compose_cli()
    assert cli is not None
    env = {**os.environ, "ERRSTREAM_CLICKHOUSE_PASSWORD": "only-for-config-check"}
    out = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
