"""Alerts raised from data stored in ClickHouse: measured alert rules and escalation, run periodically by notify."""
