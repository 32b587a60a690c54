-- Write-ahead log of the sink's batch boundaries. Before inserting offsets
-- [first_offset, last_offset] of a partition, the sink records them here; any later
-- replay of those offsets (a crash before the Kafka commit, or an operator resetting
-- the consumer group) rebuilds exactly the same batches, reuses the same
-- insert_deduplication_token, and ClickHouse drops the repeated blocks.
CREATE TABLE IF NOT EXISTS {db}.sink_batches
(
    consumer_group String,
    topic          String,
    partition      UInt32,
    first_offset   UInt64,
    last_offset    UInt64,
    planned_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (consumer_group, topic, partition, first_offset)
TTL toDateTime(planned_at) + INTERVAL {ttl_days} DAY;
