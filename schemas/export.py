"""JSON Schema export for producers written in other languages."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from schemas import AlertEvent, DeadLetter, ErrorEvent, ProcessedEvent
from schemas.events import LEVEL_ALIASES, LEVELS
from schemas.issue_status import IssueStatusChange

EXPORTED: dict[str, type[BaseModel]] = {
    "error_event": ErrorEvent,
    "processed_event": ProcessedEvent,
    "alert_event": AlertEvent,
    "dead_letter": DeadLetter,
    # the compacted issue-status topic: what a tool publishes to resolve, ignore or archive an issue
    "issue_status_change": IssueStatusChange,
}


def accepted_level_spellings() -> list[str]:
    """Every ``level`` the worker takes: the five levels and their aliases (``fatal``, ``warn``, …) as
    producers write them (lower, upper and capitalised case; the worker lower-cases)."""
    names = [*LEVELS, *LEVEL_ALIASES]
    return sorted({spelling for n in names for spelling in (n, n.upper(), n.capitalize())})


def export_json_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in EXPORTED.items():
        path = directory / f"{name}.schema.json"
        schema = model.model_json_schema(mode="validation")
        if model is ErrorEvent:  # what producers send: the aliases the worker accepts are valid input
            schema["properties"]["level"]["enum"] = accepted_level_spellings()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
