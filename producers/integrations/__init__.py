"""Ways errors reach the SDK without an explicit call: logging, uncaught-exception hooks, web middleware."""

from producers.integrations.asgi import ErrstreamASGIMiddleware
from producers.integrations.hooks import install_asyncio_handler, install_excepthooks
from producers.integrations.logging_handler import ErrstreamHandler
from producers.integrations.wsgi import ErrstreamWSGIMiddleware

__all__ = [
    "ErrstreamASGIMiddleware", "ErrstreamHandler", "ErrstreamWSGIMiddleware", "install_asyncio_handler",
    "install_excepthooks",
]
