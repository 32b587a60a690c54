"""Sinks: processed events into ClickHouse, alerts to their destinations."""
