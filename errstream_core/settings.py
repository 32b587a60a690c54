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

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.notifications import WebhookDestination


class GatewayProject(BaseModel):
    """One project that may send to the gateway, identified by its DSN public key."""

    public_key: str
    service: str | None = None  # service name of its events; defaults to "project-<id>"
    rate_limit: float | None = None  # events per second (token bucket); None = unlimited
    burst: int | None = None  # bucket size; defaults to max(rate_limit, 1)


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

    # --- every consumer (processing stage, sink, notify): hand-overs, shutdown, outages ----
    # a crashed member keeps its partitions this long; Kafka's minimum is 6 s (group.min.session.timeout.ms)
    consumer_session_timeout_seconds: float = 10.0
    # static membership (KIP-345): a stable, unique name per process (e.g. the pod or host name); a restart
    # within the session timeout keeps its partitions without a rebalance. "" = dynamic membership.
    consumer_instance_id: str = ""
    consumer_assignor: Literal["sticky", "range", "roundrobin"] = "sticky"
    shutdown_seconds: float = 7.0  # SIGTERM: finish or abandon the batch, commit and leave within this
    outage_report_seconds: float = 30.0  # while a server stays unreachable, one reminder line this often
    retry_max_seconds: float = 10.0  # cap of the exponential backoff against an unreachable server

    # --- sink batching (Snuba uses 50k rows or 2 s) ------------------------
    sink_batch_rows: int = 50_000
    sink_batch_seconds: float = 1.0
    sink_dedup_lookback: int = 100_000

    # Prometheus /metrics of `errstream worker` and `errstream sink` (0 = off). Each process needs
    # its own port: several workers on one host use ERRSTREAM_METRICS_PORT per process.
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    # --- grouping, scrubbing, sampling (worker) ---------------------------
    # JSON-valued: ERRSTREAM_SAMPLE_RATES='{"info": 0.2}' (merged over the defaults
    # critical 1.0, error 1.0, warning 0.5, info 0.1, debug 0.01);
    # ERRSTREAM_SERVICE_SAMPLE_RATES='{"billing": {"warning": 1.0}}'
    sample_rates: dict[str, float] = Field(default_factory=dict)
    service_sample_rates: dict[str, dict[str, float]] = Field(default_factory=dict)
    rate_limit_per_fingerprint: int = Field(default=100, ge=0)  # stored events / fingerprint / minute; 0 = off
    rate_limit_global: int = Field(default=10_000, ge=0)  # stored events / minute / worker; 0 = off
    scrub_ip_addresses: bool = False  # hash user.ip_address, mask IPv4 addresses in text
    scrub_user_ids: bool = False  # hash user.id (distinct-user counts keep working)
    scrub_hash_key: SecretStr = SecretStr("")  # key of those hashes; set one per deployment
    scrub_sensitive_keys: list[str] = Field(default_factory=list)  # extra key names to filter
    # a crashed worker's partitions wait this long before the group moves them (faust's default is 60 s)
    worker_session_timeout_seconds: float = 10.0

    # --- detection (worker side); times in seconds, windows on event time ----
    detection_enabled: bool = True
    detect_grace_seconds: float = 60.0  # a 1-minute window stays open this long for late events
    alert_cooldown_seconds: float = 1_800.0  # per dedup key, event time
    alert_threshold_counts: list[int] = [10, 100, 1_000, 10_000, 100_000, 1_000_000]  # JSON list in the env
    alert_rate_count: int = 0  # alert on N events of one issue in M minutes (0 = off) ...
    alert_rate_minutes: int = 5  # ... M
    spike_scopes: str = "service"  # comma list: service, issue
    spike_factor: float = 3.0  # threshold = max(min_count, factor × mean, mean + z × sigma)
    spike_z: float = 8.0
    spike_min_count: int = 20
    spike_alpha: float = 0.1  # EWMA weight of the newest closed minute in the mean ...
    spike_var_alpha: float = 0.02  # ... and in the variance (slower: a quiet stretch does not shrink sigma)
    spike_warmup_minutes: int = 5
    spike_floor: float = 1.0  # events/min the baseline never drops below
    chain_window_seconds: float = 5.0  # errors of one trace within this span of event time form a chain
    chain_settle_seconds: float = 1.0  # a chain is published after this long (wall) without growing
    chain_min_services: int = 2
    chain_retention_seconds: float = 600.0
    # --- alert notifications: JSON list of WebhookDestination (schemas/notifications.py)
    alert_webhooks: list[WebhookDestination] = Field(default_factory=list)

    # --- local launcher ----------------------------------------------------
    home: Path = Path(".errstream")  # state of `errstream local`: pid files, logs, Kafka and chDB data
    cache_dir: Path = Path.home() / ".cache" / "errstream"  # Kafka jars resolved by Maven
    kafka_version: str = "4.1.1"
    local_kafka_port: int = 9092
    local_clickhouse_port: int = 8123

    # --- HTTP ingestion gateway (producers/gateway) ---------------------------
    # JSON map project id → {"public_key", "service", "rate_limit" (events/s), "burst"}; see docs/ingestion.md
    gateway_projects: dict[str, GatewayProject] = {}
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    gateway_max_body_bytes: int = 5_000_000  # as sent (compressed); larger → 413
    gateway_max_decompressed_bytes: int = 20_000_000  # after gzip/deflate/br; larger → 413
    gateway_publish_timeout: float = 10.0  # broker unreachable longer than this → 503
    # Reverse proxies (comma-separated IPs/CIDRs, or "*") whose X-Forwarded-For gives the client address used
    # for Sentry's {{auto}} user IP. Unset: no proxy is trusted and the TCP peer is the client.
    gateway_trusted_proxies: str | None = None

    @property
    def chains_topic(self) -> str:
        """Where the worker publishes chain records and the chains sink reads them."""
        return self.topic_chains or f"{self.app_id}-chains"

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
