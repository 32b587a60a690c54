"""pydantic v2 models: the one contract between producers, processors and sinks."""

from schemas.alerts import AlertEvent, AlertKind, Severity
from schemas.dead_letter import DeadLetter, ValidationProblem
from schemas.events import (
    LEVELS,
    Breadcrumb,
    ErrorEvent,
    ExceptionInfo,
    Level,
    Mechanism,
    RequestInfo,
    StackFrame,
    User,
)
from schemas.processed import ProcessedEvent

__all__ = [
    "LEVELS",
    "AlertEvent",
    "AlertKind",
    "Breadcrumb",
    "DeadLetter",
    "ErrorEvent",
    "ExceptionInfo",
    "Level",
    "Mechanism",
    "ProcessedEvent",
    "RequestInfo",
    "Severity",
    "StackFrame",
    "User",
    "ValidationProblem",
]
