"""Writing ClickHouse: the event sink, the small topic sinks, rows, storage, migrations, cluster DDL."""
