"""Installing detection into the worker's faust app.

Topology (every topic has ``topic_partitions`` partitions, so faust assigns
partition *p* of all of them, and of the tables' changelogs, to one worker)::

    {app}-detect-by-fingerprint (signal bundles from the processing stage, one per
    partition of their fingerprints) ──▶ detect-issues (issues.py) ──▶ alerts
        │  state: issues[fingerprint], reads statuses[fingerprint] and merges[fingerprint]
        ├──▶ {app}-detect-by-service (key service; counts per bundle) ──▶ detect-services (spikes.py) ──▶ alerts
        └──▶ {app}-detect-by-trace (partition of the trace id) ──▶ detect-chains (chains.py) ──▶ {app}-chains, alerts
    issue-status (compacted, key fingerprint) ──▶ track-issue-status (status.py): statuses[fingerprint]
    issue-merges (compacted, key fingerprint) ──▶ track-issue-merges (status.py): merges[fingerprint] = primary

How state and outputs stay exact under replays and rebalances: ``context.py``.
"""

from __future__ import annotations

import faust

from errstream_core.settings import Settings
from stream_processors.detection_agents import chains, issues, spikes, status
from stream_processors.detection_agents.context import Detection
from stream_processors.detection_rules.config import DetectionConfig


def install_detection(app: faust.App, settings: Settings) -> Detection:
    detection = Detection(app, settings, DetectionConfig.from_settings(settings))
    status.install(detection)
    issues.install(detection)
    spikes.install(detection)
    chains.install(detection)
    return detection
