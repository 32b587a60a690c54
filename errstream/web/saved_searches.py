"""Saved searches, per user: a name and a stream URL's query string, kept in a small JSON file.

Per user means per token name (the name a change is recorded under). They live beside the tokens
file in ``ERRSTREAM_HOME`` (mode 0600, written atomically), not on a topic or in ClickHouse: they
are one web deployment's preferences, as the tokens are its secrets, and the app writes nothing
else. Bounded: ``MAX_PER_USER`` searches of ``MAX_NAME``/``MAX_QUERY`` characters each.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import orjson
from pydantic import BaseModel, Field

MAX_PER_USER = 50
MAX_NAME = 100
MAX_QUERY = 2_000
STREAM_KEYS = ("q", "status", "service", "environment", "release", "level", "assignee", "sort")


class SavedSearch(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    query: str = Field(max_length=MAX_QUERY, description="the stream's query string, e.g. q=is%3Aunresolved&sort=events")

    @property
    def url(self) -> str:
        return f"/issues?{self.query}"


class SearchLimit(ValueError):
    """Too many saved searches, or a query string with nothing of the stream's in it: the caller's 400."""


def stream_query(raw: str) -> str:
    """Only the stream's own parameters of a query string (no cursor, notice or anything else), re-encoded."""
    kept = [(k, v) for k, v in parse_qsl(raw, keep_blank_values=True) if k in STREAM_KEYS]
    return urlencode(kept)


class SavedSearches:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[dict[str, str]]]:
        try:
            doc = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        return doc.get("users", {}) if isinstance(doc, dict) else {}

    def _save(self, users: dict[str, list[dict[str, str]]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(orjson.dumps({"users": users}, option=orjson.OPT_INDENT_2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def list(self, user: str) -> list[SavedSearch]:
        with self._lock:
            return [SavedSearch(**s) for s in self._load().get(user, [])]

    def save(self, user: str, search: SavedSearch) -> SavedSearch:
        """Add (or replace, by name) one of ``user``'s searches."""
        search = SavedSearch(name=search.name.strip(), query=stream_query(search.query))
        if not search.name:
            raise SearchLimit("a saved search needs a name")
        with self._lock:
            users = self._load()
            mine = [s for s in users.get(user, []) if s.get("name") != search.name]
            if len(mine) >= MAX_PER_USER:
                raise SearchLimit(f"at most {MAX_PER_USER} saved searches; delete one first")
            users[user] = [*mine, search.model_dump()]
            self._save(users)
        return search

    def delete(self, user: str, name: str) -> bool:
        with self._lock:
            users = self._load()
            mine = users.get(user, [])
            kept = [s for s in mine if s.get("name") != name]
            if len(kept) == len(mine):
                return False
            users[user] = kept
            self._save(users)
            return True
