"""Delivering alerts to people: dispatch with retries, webhook/Slack/Teams/PagerDuty/SMS requests, e-mail, the digest, owners."""
