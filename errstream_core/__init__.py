"""The small core every role shares: settings, the topic registry, the token bucket, metrics.

It depends only on ``schemas``; producers, stream processors, sinks, reports and the CLI depend on it.
"""
