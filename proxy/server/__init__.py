"""The aiohttp HTTP layer: app factory, error middleware, thin route handlers, ``iapo serve``."""

from proxy.server.app import create_app

__all__ = ["create_app"]
