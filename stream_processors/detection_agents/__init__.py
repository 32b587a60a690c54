"""Detection in the worker: faust agents and changelog tables, one module per agent.

The decisions (new issue, thresholds, spikes, chains) are pure functions in
``stream_processors.detection_rules``; these modules only move records and state.
"""

from stream_processors.detection_agents.app import install_detection

__all__ = ["install_detection"]
