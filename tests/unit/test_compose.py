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


ROLES = ("migrate", "worker", "sink", "notify", "gateway")  # every role `errstream` runs without Docker
ONE_SHOT = {"migrate"}


def _doc() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_wires_kafka_clickhouse_and_every_role() -> None:
    services = _doc()["services"]
    assert {"kafka", "clickhouse", *ROLES} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    for role in ROLES:
        assert services[role]["command"][0] == role
        assert services[role]["environment"]["ERRSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    # `--scale worker=N` needs a worker without a fixed name or host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    # No secret in the file: every password comes from the environment.
    for svc in services.values():
        for key, value in (svc.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{key} must come from the environment"


def test_every_role_is_an_errstream_command() -> None:
    """The compose roles are the same commands as the local path, so a rename breaks this test, not users."""
    from typer.main import get_command

    from errstream.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    assert set(ROLES) <= commands


def test_healthchecks_and_start_order() -> None:
    services = _doc()["services"]
    for name, svc in services.items():
        if name in ONE_SHOT:
            # A one-shot exits when done: its dependents wait for a successful exit instead of a health state.
            assert svc.get("restart") == "no"
            continue
        check = svc.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for role in ("sink", "notify"):  # both write to ClickHouse tables the migration creates
        assert services[role]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for role in ("worker", "sink", "notify", "gateway"):
        assert services[role]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    # The metrics healthchecks need the metrics server on in the container.
    for role in ("worker", "sink", "notify"):
        assert "9100" in " ".join(services[role]["healthcheck"]["test"])
        assert str(services[role]["environment"]["ERRSTREAM_METRICS_PORT"]) == "9100"


def test_kafka_is_reachable_from_the_host() -> None:
    kafka = _doc()["services"]["kafka"]
    env = kafka["environment"]
    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    # Containers reach kafka:9092, the host localhost:29092, each on its own listener.
    assert advertised["PLAINTEXT"] == "kafka:9092"
    host_listener = next(name for name, addr in advertised.items() if addr == "localhost:29092")
    assert listeners[host_listener] == ":29092" and host_listener in protocols
    assert set(advertised) <= set(protocols) and "CONTROLLER" not in advertised
    # ... and the host port is published (loopback only).
    assert "127.0.0.1:29092:29092" in kafka["ports"]


def test_gateway_is_published_on_loopback_and_listens_in_the_container() -> None:
    gateway = _doc()["services"]["gateway"]
    assert gateway["command"][gateway["command"].index("--host") + 1] == "0.0.0.0"
    assert all(str(p).startswith("127.0.0.1:") for p in gateway["ports"])


def test_image_contains_every_package() -> None:
    """The compose roles run the Dockerfile's image: it must ship every package and the pipeline extra."""
    import tomllib

    root = COMPOSE.parent
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    dockerfile = (root / "Dockerfile").read_text()
    packages = {p.name for p in root.iterdir() if (p / "__init__.py").exists()}
    shipped = {p for p in packages if any(p.startswith(pat.rstrip("*")) for pat in include["include"])}
    assert shipped >= {"errstream", "errstream_core", "reports", "schemas", "producers", "stream_processors",
                       "sinks"}
    for package in shipped:
        assert f"COPY {package} {package}" in dockerfile, f"Dockerfile does not copy {package}"
    assert "[pipeline]" in dockerfile


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose CLI on this machine")
def test_docker_compose_config_parses() -> None:
    cli = _compose_cli()
    assert cli is not None
    env = {**os.environ, "ERRSTREAM_CLICKHOUSE_PASSWORD": "only-for-config-check"}
    out = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
