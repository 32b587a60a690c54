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


ROLES = ("migrate", "worker", "sink", "notify", "gateway", "web")  # every role `errstream` runs without Docker
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
    for role in ("worker", "sink", "notify", "gateway", "web"):
        assert services[role]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert services["web"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
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
    assert "[web]" in dockerfile  # the web extra holds the pipeline extra: every role runs from one image


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose CLI on this machine")
def test_docker_compose_config_parses() -> None:
    cli = _compose_cli()
    assert cli is not None
    env = {**os.environ, "ERRSTREAM_CLICKHOUSE_PASSWORD": "only-for-config-check",
           "ERRSTREAM_CLICKHOUSE_ANALYST_PASSWORD": "only-for-config-check", "ERRSTREAM_SCRUB_HASH_KEY": "k"}
    out = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr


def test_kafka_keeps_its_topics_on_the_volume() -> None:
    """Before: the volume was at /var/lib/kafka/data but the broker logged elsewhere, so recreating the
    container lost every topic, the compacted issue-status and merge topics included."""
    kafka = _doc()["services"]["kafka"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in kafka["volumes"]}
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"].split(",")
    assert log_dirs and all(any(d == m or d.startswith(m + "/") for m in mounts) for d in log_dirs), (log_dirs, mounts)
    assert all(name in _doc()["volumes"] for name in mounts.values())


def test_every_long_running_service_restarts_and_has_a_healthcheck() -> None:
    for name, svc in _doc()["services"].items():
        if name in ONE_SHOT:
            continue
        assert svc.get("restart") in ("unless-stopped", "always"), f"{name} has no restart policy"
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_notify_and_web_get_the_configuration_their_features_need() -> None:
    """Before: notify got only the webhook variable: no e-mail, escalation, digest, links or scrub key."""
    services = _doc()["services"]
    notify = services["notify"]["environment"]
    for name in ("ALERT_WEBHOOKS", "ALERT_EMAILS", "ESCALATION_AFTER_MINUTES", "DIGEST_DESTINATIONS", "DIGEST_AT",
                 "WEB_BASE_URL", "SCRUB_HASH_KEY", "CLICKHOUSE_PASSWORD"):
        assert f"ERRSTREAM_{name}" in notify, name
    from errstream_core.settings import Settings

    fields = set(Settings.model_fields)
    for name, svc in services.items():  # every variable a role gets is one errstream reads
        for key in svc.get("environment") or {}:
            if key.startswith("ERRSTREAM_") and name not in ("kafka", "clickhouse"):
                assert key.removeprefix("ERRSTREAM_").lower() in fields, (name, key)
    for role in ("worker", "gateway"):  # they scrub: the hash key must be theirs too
        assert services[role]["environment"]["ERRSTREAM_SCRUB_HASH_KEY"].startswith("${ERRSTREAM_SCRUB_HASH_KEY:?")
    web = services["web"]
    assert web["command"][:1] == ["web"] and all(str(p).startswith("127.0.0.1:") for p in web["ports"])
    assert any(v.endswith(":/data") for v in web["volumes"]) and web["environment"]["ERRSTREAM_WEB_TOKENS_FILE"] \
        .startswith("/data/")


def test_clickhouse_has_a_read_only_analyst_login() -> None:
    import xml.etree.ElementTree as ET

    doc = _doc()
    clickhouse = doc["services"]["clickhouse"]
    [mount] = [c for c in clickhouse["configs"] if c["source"] == "clickhouse-analyst"]
    assert mount["target"].startswith("/etc/clickhouse-server/users.d/")
    root = ET.fromstring(doc["configs"]["clickhouse-analyst"]["content"])
    user = root.find("users/analyst")
    assert user is not None and user.findtext("profile") == "analyst"
    password = user.find("password")
    assert password is not None and password.get("from_env") == "ERRSTREAM_CLICKHOUSE_ANALYST_PASSWORD"
    assert clickhouse["environment"]["ERRSTREAM_CLICKHOUSE_ANALYST_PASSWORD"].startswith("${")
    profile = root.find("profiles/analyst")
    assert profile is not None and profile.findtext("readonly") == "1"
    assert int(profile.findtext("max_execution_time") or 0) > 0 and int(profile.findtext("max_memory_usage") or 0) > 0
    assert [d.text for d in user.findall("allow_databases/database")] == ["errstream"]


def test_the_operations_guide_describes_the_compose_file_as_it_is() -> None:
    guide = (COMPOSE.parent / "docs" / "operations.md").read_text()
    section = guide[guide.index("## Docker Compose"):guide.index("## Scaling")]
    assert "Add `errstream notify`" not in section
    for service in _doc()["services"]:
        assert f"`{service}`" in section, f"docs/operations.md does not mention the {service} service"
