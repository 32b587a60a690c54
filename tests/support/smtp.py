"""A real local SMTP server (aiosmtpd) standing in for a mail provider: STARTTLS with a test CA, AUTH."""

from __future__ import annotations

import email
import email.policy
import ssl
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from errstream.local.process import free_port


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's API
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class LocalSMTP:
    """``with LocalSMTP(tmp_path, user="alerts", password="pw") as smtp:`` — port, CA file and received mail."""

    def __init__(self, directory: Path, user: str = "alerts", password: str = "s3cret-pw") -> None:
        self.user, self.password = user, password
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.tls)
        self.inbox = _Inbox()
        self.port = free_port()
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, tls_context=self.tls, require_starttls=True,
            authenticator=self._authenticate, auth_required=True, auth_require_tls=True,
        )

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login.decode() == self.user and \
            data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.messages

    def __enter__(self) -> LocalSMTP:
        self.controller.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.controller.stop()
