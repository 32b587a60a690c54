-- A sink flush writes the batches of all its partitions in one insert per table (sinks/clickhouse/flush_plan.py).
-- The batch log keeps, beside each partition's offsets, the flush's member list ("0:10-19,3:7-12"; empty for a
-- flush of one partition), so whoever replays the flush rebuilds it whole and ClickHouse drops the repeat by token.
ALTER TABLE {db}.sink_batches ADD COLUMN IF NOT EXISTS flush String DEFAULT '';
