"""Configuration from ``ERRSTREAM_*`` environment variables.

One settings object is shared by every component so that a single environment
describes a deployment: the worker, the sink, the gateway and the CLI all read
the same variable names. Secrets are ``SecretStr`` so they never end up in logs
or reprs.
"""

from __future__ import annotations

import ssl
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from errstream_core.local_credentials import ADMIN_USER, ANALYST_USER, read_password
from schemas.notifications import EmailDestination, WebhookDestination
from schemas.ownership import OwnershipRule


class GatewayProject(BaseModel):
    """One project that may send to the gateway, identified by its DSN public key."""

    public_key: str
    service: str | None = None  # service name of its events; defaults to "project-<id>"
    # Services this key may post for through /api/v1/events (which names the service per event). Empty: only
    # `service` (or "project-<id>"). "*" allows any: one key for a whole fleet, knowingly.
    services: list[str] = []
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
    topic_issue_merges: str = "errstream-issue-merges"  # compacted, keyed by fingerprint: its primary issue
    topic_grouping_rules: str = "errstream-grouping-rules"  # compacted, keyed by rules version
    topic_sessions: str = "errstream-sessions"  # per-minute session/request counts (release health)
    topic_alert_rules: str = "errstream-alert-rules"  # compacted: the alert rules in force (errstream alerts rules)
    alert_rules_interval_seconds: float = Field(default=15.0, gt=0)  # how often notify evaluates measured rules
    grouping_rules_delay_seconds: float = 5.0  # a published rules version takes effect this much later
    # Grouping versions (docs/grouping.md#grouping-versions-and-upgrades): new issues get grouping_version;
    # while an event's broker time is before grouping_transition_until (None: no end yet), the previous
    # version's fingerprint is computed too and detection maps it onto the existing issue. Empty
    # ERRSTREAM_GROUPING_PREVIOUS_VERSION (or a past ..._UNTIL) ends the transition.
    grouping_version: int = Field(default=2, ge=1, le=2)
    grouping_previous_version: int | None = Field(default=1, ge=1, le=2)
    grouping_transition_until: datetime | None = None
    topic_chains: str = ""  # ErrorChain records from the worker; "" = the worker's internal "{app_id}-chains"
    topic_partitions: int = 4
    # errors.dlq keeps raw payloads (before scrubbing) for replay: ensure_topics gives it this retention
    # (new and existing topic); 0 leaves the broker's default. Who may read it: docs/ingestion.md.
    dlq_retention_hours: float = Field(default=72.0, ge=0)
    # Replication of the topics errstream creates: "auto" = min(3, brokers in the cluster), so one broker
    # gets 1 and a three-broker cluster 3; min.insync.replicas "auto" = replication factor - 1 (at least 1),
    # i.e. 2 of 3 replicas must have a record before an acks=all producer hears it is written.
    topic_replication_factor: int | Literal["auto"] = "auto"
    topic_min_insync_replicas: int | Literal["auto"] = "auto"
    app_id: str = "errstream"
    sink_group: str = "errstream-sink"
    # How long the sink and notify wait for Kafka at start before exiting with one line saying so
    # (a supervisor restarts them); `errstream --timeout N sink` overrides it.
    startup_timeout: float = Field(default=60.0, gt=0)

    # --- ClickHouse --------------------------------------------------------
    clickhouse_url: str = "http://127.0.0.1:8123"
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "errstream"
    clickhouse_verify_tls: bool = True
    clickhouse_ca_cert: Path | None = None
    # ClickHouse cluster (remote_servers) name: migrations then emit ON CLUSTER, Replicated*MergeTree and
    # Distributed tables (sinks/clickhouse/cluster_ddl.py, docs/operations.md). "" = one server.
    clickhouse_cluster: str = ""
    events_ttl_days: int = 90

    # --- every consumer (processing stage, sink, notify): hand-overs, shutdown, outages ----
    # a crashed member keeps its partitions this long; Kafka's minimum is 6 s (group.min.session.timeout.ms)
    consumer_session_timeout_seconds: float = 10.0
    # static membership (KIP-345): a stable, unique name per process (e.g. the pod or host name); a restart
    # within the session timeout keeps its partitions without a rebalance. "" = dynamic membership.
    consumer_instance_id: str = ""
    # range, not sticky: aiokafka's sticky assignor puts the generation in each member's join metadata,
    # so a member rejoining while the group awaits sync "changes its metadata" and starts another
    # rebalance; under frequent membership changes a group of sinks looped for minutes
    consumer_assignor: Literal["sticky", "range", "roundrobin"] = "range"
    shutdown_seconds: float = 7.0  # SIGTERM: finish or abandon the batch, commit and leave within this
    outage_report_seconds: float = 30.0  # while a server stays unreachable, one reminder line this often
    retry_max_seconds: float = 10.0  # cap of the exponential backoff against an unreachable server

    # --- sink batching (Snuba uses 50k rows or 2 s) ------------------------
    sink_batch_rows: int = 50_000
    sink_batch_seconds: float = 0.5  # one flush of every partition: ~8 ClickHouse parts (docs/performance.md)
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
    # Event timestamps further than this from the worker's receive time are replaced by the receive time
    # (the original is kept as original_timestamp and counted): a device with a wrong clock still counts
    # "now" instead of in 1970 or 2999, and a batch cannot spread over hundreds of daily partitions.
    # Sentry's Relay also allows 30 days. At most 90: one insert may touch at most 100 daily partitions of
    # error_events (ClickHouse's max_partitions_per_insert_block), and the default TTL is 90 days.
    event_max_past_seconds: float = Field(default=30 * 86_400, gt=0, le=90 * 86_400)
    event_max_future_seconds: float = Field(default=300, gt=0)  # as detection's MAX_FUTURE (signals.py)
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
    # burst: one minute ≥ max(min_count, factor × expected, expected + z × sigma); docs/detection.md
    spike_factor: float = Field(default=2.7, gt=1.0)
    spike_z: float = Field(default=4.75, ge=0.0)
    spike_min_count: int = Field(default=20, ge=1)
    spike_ramp: float = Field(default=0.3, ge=0.0, le=1.0)  # the recent level counts only where the profile ramps
    spike_alpha: float = Field(default=0.05, gt=0.0, le=1.0)  # weight of the newest closed minute in the flat level
    spike_seasonal_alpha: float = Field(default=0.005, gt=0.0, le=1.0)  # ... in the level once the profile is used
    spike_var_alpha: float = Field(default=0.01, gt=0.0, le=1.0)  # ... in the relative over-dispersion
    spike_warmup_minutes: int = Field(default=5, ge=0)
    spike_floor: float = Field(default=1.0, gt=0.0)  # events/min the expectation never drops below
    spike_seasonal: bool = True  # learn the hour-of-week profile (168 hourly buckets per key)
    spike_bootstrap_days: int = Field(default=14, ge=0)  # cold start: profile from error_counts_1h (0 = off)
    # sustained rise: the last RISE_MINUTES together ≥ max(min_count, factor × expected, expected + z × sigma)
    rise_factor: float = Field(default=1.7, gt=1.0)
    rise_z: float = Field(default=5.0, ge=0.0)
    rise_minutes: int = Field(default=4, ge=0, le=60)  # 0 = no sustained-rise alerts
    rise_min_count: int = Field(default=40, ge=1)
    rise_cooldown_seconds: float = Field(default=1_800.0, ge=0.0)  # per dedup key, event time
    chain_window_seconds: float = 5.0  # errors of one trace within this span of event time form a chain
    chain_settle_seconds: float = 1.0  # a chain is published after this long (wall) without growing
    chain_min_services: int = 2
    chain_retention_seconds: float = 600.0
    # archived "until escalating": the forecast's hourly ceiling never goes below this (docs/detection.md)
    escalating_min_per_hour: int = Field(default=10, ge=1)
    # --- alert notifications: JSON list of WebhookDestination (schemas/notifications.py)
    alert_webhooks: list[WebhookDestination] = Field(default_factory=list)
    # --- alert e-mails: JSON list of EmailDestination (schemas/notifications.py)
    alert_emails: list[EmailDestination] = Field(default_factory=list)
    # escalation (errstream notify): unacknowledged, still-occurring issues alert again after these waits
    escalation_after_minutes: list[int] = Field(default_factory=list)  # e.g. [60, 240]; empty = off
    escalation_active_minutes: int = Field(default=15, ge=1)  # "still occurring": seen within this window
    escalation_interval_seconds: float = Field(default=60.0, gt=0)
    # auto-resolve (errstream notify): an open issue not seen for this many minutes is resolved, recorded as
    # by AUTO_RESOLVER; 0 = off (the default: resolving is a person's decision unless you choose otherwise)
    auto_resolve_minutes: int = Field(default=0, ge=0, le=525_600)
    auto_resolve_service_minutes: dict[str, Annotated[int, Field(ge=0, le=525_600)]] = Field(
        default_factory=dict)  # per service, overriding the default; 0 = never for that service
    auto_resolve_interval_seconds: float = Field(default=60.0, gt=0)
    # daily digest (errstream notify): names of webhook/e-mail destinations, and when (UTC, HH:MM)
    digest_destinations: list[str] = Field(default_factory=list)
    digest_at: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    digest_interval_seconds: float = Field(default=60.0, gt=0)
    web_base_url: str = ""  # links in alert messages point here (the web app), e.g. https://errors.example.com

    # --- local launcher ----------------------------------------------------
    home: Path = Path(".errstream")  # state of `errstream local`: pid files, logs, Kafka and chDB data
    cache_dir: Path = Path.home() / ".cache" / "errstream"  # Kafka jars resolved by Maven
    kafka_version: str = "4.1.1"
    local_kafka_port: int = 9092  # with N brokers, node i listens on port + 2(i-1), its controller one above
    local_kafka_brokers: int = Field(default=1, ge=1, le=9)  # `errstream local up --brokers 3`: a KRaft quorum
    local_clickhouse_port: int = 8123
    # the embedded ClickHouse's read-only logins (analyst): per-query bounds, so one query cannot take the host
    local_clickhouse_analyst_max_seconds: float = Field(default=60.0, gt=0)
    local_clickhouse_analyst_max_memory_bytes: int = Field(default=2_000_000_000, gt=0)

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

    # --- web app and REST API (errstream/web); docs/web.md ------------------------------------
    web_host: str = "127.0.0.1"  # loopback unless configured: nothing listens publicly by default
    web_port: int = 8090
    web_tokens_file: Path | None = None  # hashed API tokens (mode 0600); default <home>/web-tokens.json
    web_session_hours: float = 12.0
    # Key that signs browser sessions (any string, 32+ random characters). Unset: a random key kept in
    # web-session-key beside the tokens file (mode 0600), so sessions survive a restart. Set it when several web
    # processes serve one site; changing it logs everyone out.
    web_session_key: SecretStr | None = None
    web_cookie_secure: bool = False  # set when served over HTTPS (behind a TLS proxy)
    web_login_per_minute: float = 10.0  # login attempts per client address (token bucket, burst 5)
    # A live stream (Server-Sent Events) ends after this long and the browser reconnects: a connection a page
    # forgot (a frozen tab, a proxy that hides the close) is never held for ever.
    web_stream_seconds: float = 300.0
    # The overview's report is shared and recomputed at most this often (a background refresh; 0: on every
    # request), and never served older than web_overview_max_age_seconds (docs/web.md#the-overviews-freshness).
    web_overview_refresh_seconds: float = Field(default=10.0, ge=0)
    web_overview_max_age_seconds: float = Field(default=60.0, ge=0)
    # JSON list of {"kind": "path|module|service|tag", "pattern": "...", "owner": "..."}; first match wins
    ownership_rules: list[OwnershipRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _destinations_exist(self) -> Settings:
        """Names that point at destinations must name configured ones: refused at start, not at alert time."""
        names = [d.name for d in self.alert_webhooks] + [d.name for d in self.alert_emails]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"destination names in ALERT_WEBHOOKS and ALERT_EMAILS must be unique: {dupes}")
        if unknown := sorted(set(self.digest_destinations) - set(names)):
            raise ValueError(f"DIGEST_DESTINATIONS names {unknown}, which ALERT_WEBHOOKS / ALERT_EMAILS do not "
                             f"configure (configured: {sorted(names) or 'none'})")
        return self

    @property
    def destination_names(self) -> set[str]:
        """Every configured alert destination (webhooks and e-mail), by name."""
        return {d.name for d in self.alert_webhooks} | {d.name for d in self.alert_emails}

    @property
    def tokens_path(self) -> Path:
        return self.web_tokens_file or self.home / "web-tokens.json"

    @property
    def session_key_path(self) -> Path:
        """Where the web app keeps its session key when ERRSTREAM_WEB_SESSION_KEY is not set."""
        return self.tokens_path.with_name("web-session-key")

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
        host, port = u.hostname or "127.0.0.1", u.port or (8443 if secure else 8123)
        username = unquote(u.username) if u.username else self.clickhouse_user
        password = unquote(u.password) if u.password else self.clickhouse_password.get_secret_value()
        if not password and self._is_local_clickhouse(host, port, secure) and username in (ADMIN_USER, ANALYST_USER):
            password = read_password(self.home, username) or ""
        kw: dict[str, Any] = {
            "host": host,
            "port": port,
            "username": username,
            "password": password,
            "secure": secure,
            "verify": self.clickhouse_verify_tls,
        }
        if self.clickhouse_ca_cert:
            kw["ca_cert"] = str(self.clickhouse_ca_cert)
        return kw


    def _is_local_clickhouse(self, host: str, port: int, secure: bool) -> bool:
        """Whether the URL is the endpoint `errstream local up` serves (whose password is in a file)."""
        return not secure and port == self.local_clickhouse_port and host in ("127.0.0.1", "localhost", "::1")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
