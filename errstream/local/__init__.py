"""Local infrastructure without Docker: a real Kafka broker and embedded ClickHouse."""
