"""Pure detection logic: windows, baselines, cooldowns and the detectors built on them.

Nothing here knows about Kafka or faust: every class takes event times and
returns alerts, and its state round-trips through ``to_dict``/``from_dict`` so
the worker can keep it in a changelog-backed faust table.
"""
