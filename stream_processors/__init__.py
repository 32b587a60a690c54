"""Stream processors: validation, grouping and detection on the ``errors`` topic."""
