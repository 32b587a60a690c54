"""Configuration from ``ERRSTREAM_*`` environment variables.

One settings object is shared by every component so that a single environment
describes a deployment: the worker, the sink, the gateway and the CLI all read
the same variable names. Secrets are ``SecretStr`` so they never end up in logs
or reprs.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.notifications import WebhookDestination


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ERRSTREAM_", extra="ignore", hide_input_in_errors=True)

    # --- Kafka -------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    topic_errors: str = "errors"
    topic_dlq: str = "errors.dlq"
    topic_alerts: str = "alerts"
    topic_processed: str = "errstream-processed-events"
    topic_issue_status: str = "errstream-issue-status"  # compacted, keyed by fingerprint
    topic_chains: str = ""  # ErrorChain records from the worker; "" = the worker's internal "{app_id}-chains"
    topic_partitions: int = 4
    app_id: str = "errstream"
    sink_group: str = "errstream-sink"

    # --- ClickHouse --------------------------------------------------------
    clickhouse_url: str = "http://127.0.0.1:8123"
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "errstream"
    clickhouse_verify_tls: bool = True
    clickhouse_ca_cert: Path | None = None
    events_ttl_days: int = 90

    # --- sink batching (Snuba uses 50k rows or 2 s) ------------------------
    sink_batch_rows: int = 50_000
    sink_batch_seconds: float = 1.0
    sink_dedup_lookback: int = 100_000

    # --- alert notifications: JSON list of WebhookDestination (schemas/notifications.py)
    alert_webhooks: list[WebhookDestination] = Field(default_factory=list)

    # --- local launcher ----------------------------------------------------
    home: Path = Path(".errstream")  # state of `errstream local`: pid files, logs, Kafka and chDB data
    cache_dir: Path = Path.home() / ".cache" / "errstream"  # Kafka jars resolved by Maven
    kafka_version: str = "4.1.1"
    local_kafka_port: int = 9092
    local_clickhouse_port: int = 8123

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Security options in the form aiokafka's clients take them."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            ctx = ssl.create_default_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            )
            if self.kafka_ssl_certfile:
                ctx.load_cert_chain(
                    str(self.kafka_ssl_certfile),
                    str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
                )
            kw["ssl_context"] = ctx
        if self.kafka_sasl_mechanism:
            kw["sasl_mechanism"] = self.kafka_sasl_mechanism
            kw["sasl_plain_username"] = self.kafka_sasl_username
            kw["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return kw

    def faust_broker_url(self) -> str:
        scheme = "kafka"
        return ";".join(f"{scheme}://{h.strip()}" for h in self.kafka_bootstrap.split(","))

    def clickhouse_client_kwargs(self) -> dict[str, Any]:
        u = urlparse(self.clickhouse_url)
        secure = u.scheme == "https"
        kw: dict[str, Any] = {
            "host": u.hostname or "127.0.0.1",
            "port": u.port or (8443 if secure else 8123),
            "username": u.username or self.clickhouse_user,
            "password": u.password or self.clickhouse_password.get_secret_value(),
            "secure": secure,
            "verify": self.clickhouse_verify_tls,
        }
        if self.clickhouse_ca_cert:
            kw["ca_cert"] = str(self.clickhouse_ca_cert)
        return kw


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
