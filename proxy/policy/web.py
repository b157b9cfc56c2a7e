"""aiohttp wiring: the policy store's life cycle and the admin endpoints.

``setup_policies(app, config, registry)`` adds a ``cleanup_ctx`` that loads every configured policy
at start-up (a bad file stops the start), starts the watcher, installs the ``SIGHUP`` handler and
puts the store under :data:`POLICY_STORE`; and the routes

- ``POST /admin/reload``: reload now; 200 with what is loaded, or 422 (old set kept) with the
  problems;
- ``GET /admin/policies``: what is loaded, and the recent reload attempts.

Both need ``Authorization: Bearer <key>`` equal to the env var named by ``auth.admin_key_env``:
missing or wrong → 401; env var unset or empty → 403 (admin endpoints disabled). Errors use
OpenAI's body ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.config import Config
from proxy.errors import AuthenticationFailed, InvalidRequest, PermissionDenied, ProxyError
from proxy.policy.store import PolicyStore
from proxy.serving import bearer_token

__all__ = ["POLICY_STORE", "check_admin", "setup_policies"]

POLICY_STORE = web.AppKey("policy_store", PolicyStore)


def check_admin(request: web.Request, admin_key_env: str) -> None:
    """Raise 403 when admin is disabled, 401 when the bearer key is missing or wrong."""
    expected = os.environ.get(admin_key_env, "")
    if not expected:
        raise PermissionDenied(f"admin endpoints are disabled: set the {admin_key_env} environment variable")
    sent = bearer_token(request.headers)
    if sent is None:
        raise AuthenticationFailed("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not hmac.compare_digest(sent, expected.encode()):
        raise AuthenticationFailed("invalid admin key")


def _error(exc: ProxyError, **extra: object) -> web.Response:
    return web.json_response({**exc.body(), **extra}, status=exc.status, headers=exc.headers)


async def _reload(request: web.Request) -> web.Response:
    store = request.app[POLICY_STORE]
    try:
        check_admin(request, store.config.auth.admin_key_env)
    except ProxyError as exc:
        return _error(exc)
    result = await store.reload_async("admin")
    if not result.ok:
        exc = InvalidRequest("policy reload failed, old policies kept: " + "; ".join(result.problems),
                             code="policy_invalid", status=422)
        return _error(exc, reload=result.as_dict())
    return web.json_response({**result.as_dict(), **store.current.summary()})


async def _policies(request: web.Request) -> web.Response:
    store = request.app[POLICY_STORE]
    try:
        check_admin(request, store.config.auth.admin_key_env)
    except ProxyError as exc:
        return _error(exc)
    body = store.current.summary()
    body["reloads"] = [r.as_dict() for r in store.history]
    return web.json_response(body)


def setup_policies(app: web.Application, config: Config, registry: CollectorRegistry, *,
                   watch: bool = True, sighup: bool = True, history_size: int = 20) -> None:
    """Register the store's life cycle (``app[POLICY_STORE]``) and the admin routes on ``app``."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = PolicyStore(config, registry, history_size=history_size)
        await asyncio.to_thread(store.load_initial)
        app[POLICY_STORE] = store
        if watch:
            store.start_watching()
        if sighup:
            store.install_sighup()
        yield
        await store.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/admin/reload", _reload)
    app.router.add_get("/admin/policies", _policies)
