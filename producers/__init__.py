"""Producers: what services use to publish error events to Kafka."""
