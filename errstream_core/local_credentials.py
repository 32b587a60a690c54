"""The logins of the embedded ClickHouse endpoint (``errstream local``), kept in files under ERRSTREAM_HOME.

The endpoint runs with its owner's file rights, so it must not answer whoever
can reach loopback. ``errstream local up`` creates one password per login, once,
in a file only its owner can read (mode 0600); the endpoint requires them, and
errstream's own processes read the file (``Settings.clickhouse_client_kwargs``)
so nobody has to copy a password into the environment.

Two logins: ``default`` (read-write: migrations, the sink, the notifier, the
report) and ``analyst`` (read-only, for people and their SQL tools).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ADMIN_USER = "default"
ANALYST_USER = "analyst"
_FILES = {ADMIN_USER: "clickhouse.password", ANALYST_USER: "clickhouse-analyst.password"}


@dataclass(frozen=True)
class Login:
    user: str
    password: str
    readonly: bool


def password_file(home: Path, user: str) -> Path:
    return home / _FILES[user]


def read_password(home: Path, user: str = ADMIN_USER) -> str | None:
    """The login's password, or None when ``local up`` has not created it (or it cannot be read)."""
    try:
        return password_file(home, user).read_text().strip() or None
    except OSError:
        return None


def ensure_logins(home: Path) -> list[Login]:
    """Create the password files once (0600, never overwritten) and return both logins."""
    home.mkdir(parents=True, exist_ok=True)
    logins = []
    for user in (ADMIN_USER, ANALYST_USER):
        path = password_file(home, user)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            os.chmod(path, 0o600)  # an older or hand-made file: tighten it
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24) + "\n")
        password = read_password(home, user)
        if password is None:
            raise RuntimeError(f"{path} is empty or unreadable; delete it and run `errstream local up` again")
        logins.append(Login(user, password, readonly=user == ANALYST_USER))
    return logins
