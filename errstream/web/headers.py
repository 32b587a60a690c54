"""Headers every response carries, pages and API alike, whatever route or error produced it.

``X-Content-Type-Options: nosniff`` (a JSON body or an uploaded-looking text is never run as a
script), ``Referrer-Policy: same-origin`` (issue URLs with search terms and fingerprints are not sent
to other sites a page links to), and ``Cache-Control: no-store`` on the API (its answers are
people's errors and tokens; the pages already say so). Pure ASGI, so streaming responses pass as is.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in ALWAYS if k not in present]
                if api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
