-- Alerts as published on the `alerts` topic; replays collapse on alert_id.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id           UUID,
    kind               LowCardinality(String),
    severity           LowCardinality(String),
    dedup_key          String,
    created_at         DateTime64(3, 'UTC'),
    service            LowCardinality(String),
    fingerprint        String,
    title              String,
    message            String,
    trigger_event_id   UUID,
    trigger_event_time DateTime64(3, 'UTC'),
    details            String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (kind, service, created_at, alert_id)
TTL toDateTime(created_at) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Cross-service error chains: errors sharing a trace id within a short window.
-- A chain is re-written as it grows; the latest version (updated_at) wins.
CREATE TABLE IF NOT EXISTS {db}.error_chains
(
    trace_id         String,
    root_event_id    UUID,
    root_service     LowCardinality(String),
    root_fingerprint String,
    root_title       String,
    started_at       DateTime64(3, 'UTC'),
    ended_at         DateTime64(3, 'UTC'),
    services         Array(String),
    event_count      UInt32,
    events           Nested(
        event_id    UUID,
        service     String,
        fingerprint String,
        title       String,
        timestamp   DateTime64(3, 'UTC')
    ),
    updated_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (trace_id)
TTL toDateTime(started_at) + INTERVAL 90 DAY;

-- Issue workflow: every change is history; `issue_status` keeps the latest per fingerprint.
CREATE TABLE IF NOT EXISTS {db}.issue_status_history
(
    fingerprint String,
    status      Enum8('new' = 1, 'acknowledged' = 2, 'investigating' = 3, 'resolved' = 4, 'ignored' = 5),
    changed_at  DateTime64(3, 'UTC'),
    changed_by  String,
    note        String
)
ENGINE = ReplacingMergeTree
ORDER BY (fingerprint, changed_at, status)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.issue_status
(
    fingerprint String,
    status      Enum8('new' = 1, 'acknowledged' = 2, 'investigating' = 3, 'resolved' = 4, 'ignored' = 5),
    changed_at  DateTime64(3, 'UTC'),
    changed_by  String,
    note        String
)
ENGINE = ReplacingMergeTree(changed_at)
ORDER BY fingerprint;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.issue_status_mv TO {db}.issue_status AS
SELECT fingerprint, status, changed_at, changed_by, note FROM {db}.issue_status_history;

-- One row per webhook delivery attempt.
CREATE TABLE IF NOT EXISTS {db}.alert_deliveries
(
    alert_id     UUID,
    destination  LowCardinality(String),
    attempt      UInt16,
    attempted_at DateTime64(3, 'UTC'),
    outcome      LowCardinality(String),
    http_status  UInt16,
    error        String,
    latency_ms   Float32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(attempted_at)
ORDER BY (alert_id, attempted_at)
TTL toDateTime(attempted_at) + INTERVAL 90 DAY;
