"""JSON Schema export for producers written in other languages."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from schemas import AlertEvent, DeadLetter, ErrorEvent, ProcessedEvent

EXPORTED: dict[str, type[BaseModel]] = {
    "error_event": ErrorEvent,
    "processed_event": ProcessedEvent,
    "alert_event": AlertEvent,
    "dead_letter": DeadLetter,
}


def export_json_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in EXPORTED.items():
        path = directory / f"{name}.schema.json"
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
