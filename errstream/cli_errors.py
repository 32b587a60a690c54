"""One place that turns failures of the command line into one clear line.

Every ``errstream`` command runs inside ``ErrorReportingGroup.invoke``: an
exception that reaches it is explained (which server is unreachable and how to
start it, a missing schema, a refused login, …) in a single line on stderr and
the command exits with status 1. The traceback is shown only with the global
``--debug`` option (or ``ERRSTREAM_DEBUG=1``). Commands therefore do not catch
infrastructure errors themselves; they only bound their waits with
``command_timeout()`` (the global ``--timeout``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

# One-shot commands (send, migrate, issue, alerts tail's connect, report) wait this long by default;
# the services (sink, notify) wait ERRSTREAM_STARTUP_TIMEOUT for their servers at start.
DEFAULT_TIMEOUT = 10.0
START_HINT = "start it with `errstream local up`"


@dataclass
class CliOptions:
    debug: bool = False
    timeout: float | None = None


OPTIONS = CliOptions()


def _remember_timeout(value: float | None) -> float | None:
    if value is not None:
        OPTIONS.timeout = value
    return value


# `errstream report --timeout 3` works as well as `errstream --timeout 3 report`.
Timeout = Annotated[float | None, typer.Option(
    "--timeout", min=0.1, callback=_remember_timeout,
    help="seconds to wait for Kafka/ClickHouse before giving up (default 10; sink and notify: "
         "ERRSTREAM_STARTUP_TIMEOUT)")]


def command_timeout(default: float = DEFAULT_TIMEOUT) -> float:
    """The bound on waiting for a server: the global ``--timeout``, else ``default``."""
    return OPTIONS.timeout if OPTIONS.timeout is not None else default


class CliError(Exception):
    """A user-facing failure whose message is already the line to print (exit status ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def redact_url(url: str) -> str:
    """A URL without its user and password (they may be in ERRSTREAM_CLICKHOUSE_URL)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def _one_line(text: str, limit: int = 300) -> str:
    text = _USERINFO.sub("", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the members of exception groups (a TaskGroup's)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)


def _why(text: str) -> str:
    low = text.lower()
    if "refused" in low or "errno 111" in low or "connect call failed" in low:
        return "connection refused"
    if "name or service not known" in low or "name resolution" in low or "nodename nor servname" in low:
        return "host not found"
    if within := re.search(r"within [0-9.]+ s", text):
        return f"nothing answered {within.group(0)}"
    if "timed out" in low or "timeout" in low:
        return "no answer in time"
    return "cannot connect"


def _is_connection_error(e: BaseException) -> bool:
    """Refused/reset/unresolvable connections from the stdlib, urllib3 or httpx (webhooks, probes)."""
    if isinstance(e, ConnectionError):
        return True
    for module, names in (("urllib3.exceptions", ("NewConnectionError", "MaxRetryError", "ConnectTimeoutError")),
                          ("httpx", ("ConnectError", "ConnectTimeout"))):
        mod = sys.modules.get(module)  # only if loaded: an exception of it can only come from a loaded module
        if mod is not None and isinstance(e, tuple(getattr(mod, n) for n in names if hasattr(mod, n))):
            return True
    return False


def _mentions(text: str, url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.hostname) and f"{parts.hostname}" in text and str(parts.port or "") in text


def _settings() -> Any | None:
    try:
        from errstream_core.settings import get_settings

        return get_settings()
    except Exception:  # a broken environment is explained by its own exception
        return None


def explain(exc: BaseException) -> str:
    """The line to print for ``exc``: what failed, where, and what to do."""
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        NoBrokersAvailable,
        RequestTimedOutError,
    )
    from pydantic import ValidationError

    settings = _settings()
    kafka = settings.kafka_bootstrap if settings else "the configured bootstrap servers"
    ch_url = redact_url(settings.clickhouse_url) if settings else "the configured URL"
    db = settings.clickhouse_database if settings else "errstream"
    try:
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
    except ImportError:  # the SDK-only install has no ClickHouse client
        DatabaseError = OperationalError = ()  # type: ignore[misc,assignment]  # noqa: N806

    for e in _chain(exc):
        if isinstance(e, CliError):
            return str(e)
        if isinstance(e, KafkaConnectionError | KafkaTimeoutError | NoBrokersAvailable | RequestTimedOutError):
            return (f"Kafka at {_one_line(kafka)} is unreachable ({_why(str(e))}): {START_HINT}, "
                    "or set ERRSTREAM_KAFKA_BOOTSTRAP to a running broker")
        if isinstance(e, DatabaseError) and not isinstance(e, OperationalError):
            text = str(e)
            if "UNKNOWN_DATABASE" in text or "UNKNOWN_TABLE" in text or re.search(r"Code: (60|81)\b", text):
                return (f"ClickHouse at {ch_url} has no errstream tables in database {db!r}: "
                        "run `errstream migrate` first")
            if "AUTHENTICATION_FAILED" in text or "REQUIRED_PASSWORD" in text or re.search(r"Code: (516|194)\b",
                                                                                             text):
                return (f"ClickHouse at {ch_url} refused the login: check ERRSTREAM_CLICKHOUSE_USER and "
                        "ERRSTREAM_CLICKHOUSE_PASSWORD")
            return f"ClickHouse at {ch_url} answered with an error: {_one_line(text)}"
        if isinstance(e, OperationalError):
            return (f"ClickHouse at {ch_url} is unreachable ({_why(str(e))}): {START_HINT}, "
                    "or set ERRSTREAM_CLICKHOUSE_URL to a running server")
        if _is_connection_error(e):
            if settings and _mentions(str(e), settings.clickhouse_url):
                return (f"ClickHouse at {ch_url} is unreachable ({_why(str(e))}): {START_HINT}, "
                        "or set ERRSTREAM_CLICKHOUSE_URL to a running server")
            return f"cannot connect ({_why(str(e))}): {_one_line(str(e))}"
        if isinstance(e, ValidationError) and e.title == "Settings":
            problems = "; ".join(f"ERRSTREAM_{'.'.join(map(str, x['loc'])).upper()}: {x['msg']}" for x in e.errors())
            return f"invalid configuration: {_one_line(problems)}"
    return f"{type(exc).__name__}: {_one_line(str(exc)) or 'no message'} (run with --debug for the traceback)"


class ErrorReportingGroup(TyperGroup):
    """The root command group: every subcommand's failure is reported by ``explain`` in one line."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException, click.exceptions.Exit, click.ClickException):
            raise  # typer's (and click's) own exits and usage errors keep their meaning
        except Exception as exc:
            if OPTIONS.debug:
                raise
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"[red]error:[/red] {escape(explain(exc))}", markup=True)
            raise typer.Exit(exc.code if isinstance(exc, CliError) else 1) from None
