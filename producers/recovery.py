"""Recovery reporting: one event per failure episode, with whether the application recovered.

Three shapes cover the common patterns::

    with errstream.recovering("retry") as r:      # any hand-written recovery
        for attempt in range(3):
            try:
                charge()
                break
            except ConnectionError as exc:
                r.failed(exc)                      # a failed attempt: nothing is sent yet
        else:
            r.gave_up()                            # or let an exception leave the block

    @errstream.retry(attempts=3, backoff=0.2)      # retries with exponential backoff (sync or async)
    def charge() -> None: ...

    price = errstream.fallback(live_price, cached_price)   # the second when the first raises

An episode that fails at least once sends one event when it ends: the first failure's exception,
``recovery.successful`` true when the episode ended well, the attempts and the time from the
first failure to the end (``duration_ms``: the automatic recovery time when it succeeded). An
episode without a failure sends nothing and costs an object and two calls. Like every SDK entry
point, none of this raises into the application because of the SDK: the application's own
exception leaves as it came.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from producers import sdk

P = ParamSpec("P")
T = TypeVar("T")


_NOT_IN_NAME = re.compile(r"[^a-z0-9_.\-]")


def method_name(method: str) -> str:
    """A method as the contract takes it (lower-case letters, digits, ``_.-``; 64 at most): "Circuit Breaker"
    becomes "circuit_breaker" rather than an event the worker would refuse."""
    name = _NOT_IN_NAME.sub("_", str(method).strip().lower())[:64]
    return name if name[:1].isalpha() else ("m" + name)[:64]


class Recovering:
    """A failure episode; report it as it ends (``__exit__``). ``failed(exc)`` records one failed attempt."""

    __slots__ = ("method", "level", "tags", "client", "first", "error", "attempts", "_gave_up", "event_id")

    def __init__(self, method: str = "retry", *, level: str = "warning", tags: Mapping[str, Any] | None = None,
                 client: sdk.Client | None = None) -> None:
        self.method = method_name(method)
        self.level = level
        self.tags = tags
        self.client = client
        self.first = 0.0  # monotonic time of the first failure; 0 while there is none
        self.error: BaseException | None = None
        self.attempts = 0
        self._gave_up = False
        self.event_id: str | None = None  # the reported event's id, once sent

    def failed(self, error: BaseException) -> None:
        """One attempt failed with ``error``; the episode goes on."""
        if self.error is None:
            self.first = time.monotonic()
            self.error = error
        self.attempts += 1

    def gave_up(self, error: BaseException | None = None) -> None:
        """The episode ends without recovering (also what an exception leaving the block means)."""
        if error is not None:
            self.failed(error)
        self._gave_up = True

    def __enter__(self) -> Recovering:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if error is not None and isinstance(error, Exception):
            self.gave_up(error)
        self.finish()

    async def __aenter__(self) -> Recovering:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(kind, error, tb)

    def finish(self) -> str | None:
        """Report the episode (once); nothing when no attempt failed."""
        if self.error is None or self.event_id is not None:
            return self.event_id
        recovered = not self._gave_up
        client = self.client or sdk.get_client()
        if client is None:
            return None
        self.event_id = client.capture_exception(
            self.error, level=self.level if recovered else "error", tags=self.tags,
            recovery={"attempted": True, "successful": recovered, "method": self.method,
                      "attempts": self.attempts + (1 if recovered else 0),
                      "duration_ms": int((time.monotonic() - self.first) * 1000)},
        )
        return self.event_id


def recovering(method: str = "retry", **options: Any) -> Recovering:
    """``with errstream.recovering("fallback") as r:``; options: ``level``, ``tags``, ``client``."""
    return Recovering(method, **options)


def _ends(episode: Recovering, error: BaseException, last: bool) -> bool:
    """Record a failed attempt; on the last one report the episode as not recovered (the caller re-raises)."""
    if last:
        episode.gave_up(error)
        episode.finish()
    else:
        episode.failed(error)
    return last


def retry(attempts: int = 3, *, backoff: float = 0.1, factor: float = 2.0, max_backoff: float = 30.0,
          exceptions: tuple[type[BaseException], ...] = (Exception,), method: str = "retry",
          **options: Any) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Call the function up to ``attempts`` times, sleeping ``backoff * factor**n`` (at most ``max_backoff``)
    between attempts; report the episode when one failed. Works on ``async def`` functions too (then the
    sleeps are ``asyncio.sleep``)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def pause(n: int) -> float:
        return min(backoff * factor ** n, max_backoff)

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                episode = Recovering(method, **options)
                for n in range(attempts):
                    try:
                        result = await afn(*args, **kwargs)
                    except exceptions as exc:
                        if _ends(episode, exc, n + 1 == attempts):
                            raise
                        await asyncio.sleep(pause(n))
                    else:
                        episode.finish()
                        return result
                raise AssertionError("unreachable")

            return cast(Callable[P, T], run_async)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            episode = Recovering(method, **options)
            for n in range(attempts):
                try:
                    result = fn(*args, **kwargs)
                except exceptions as exc:
                    if _ends(episode, exc, n + 1 == attempts):
                        raise
                    time.sleep(pause(n))
                else:
                    episode.finish()
                    return result
            raise AssertionError("unreachable")

        return run

    return decorate


def fallback(primary: Callable[[], T], alternative: Callable[[], T], *,
             exceptions: tuple[type[BaseException], ...] = (Exception,), method: str = "fallback",
             **options: Any) -> T:
    """``primary()``, or ``alternative()`` when it raises; the episode is reported when ``primary`` failed
    (recovered when ``alternative`` returned, not when it raised too)."""
    try:
        return primary()
    except exceptions as exc:
        episode = Recovering(method, **options)
        episode.failed(exc)
        try:
            result = alternative()
        except BaseException:
            episode.gave_up()
            episode.finish()
            raise
        episode.finish()
        return result
