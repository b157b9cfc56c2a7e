"""The app factory: ``create_app(config) -> web.Application``.

Start-up and shutdown live in one ``cleanup_ctx``: the embedded simulator (when a model has
``api_base: embedded``) on 127.0.0.1 at a free port, the shared upstream (one HTTP session for
the process) and the chat service. State is under the typed keys of :mod:`proxy.server.state`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from proxy.config import Config
from proxy.metrics import Metrics
from proxy.server.middleware import error_middleware
from proxy.server.routes import routes
from proxy.server.state import API_KEYS, CONFIG, METRICS, MODELS, SERVICE, SIM, UPSTREAM
from proxy.serving import ChatService, PassthroughService
from proxy.upstream.base import Upstream
from proxy.upstream.direct import provider_model_name
from proxy.upstream.router import UpstreamRouter

if TYPE_CHECKING:
    from proxy.sim.server import SimServer

__all__ = ["ServiceFactory", "create_app"]

log = logging.getLogger(__name__)

# Called once at start-up, after the upstream is ready; reads what it needs from ``app``.
ServiceFactory = Callable[[web.Application], ChatService | Awaitable[ChatService]]


def create_app(config: Config, *, upstream: Upstream | None = None,
               service_factory: ServiceFactory | None = None,
               metrics: Metrics | None = None,
               plugins: Sequence[Callable[[web.Application], None]] = ()) -> web.Application:
    """The proxy as an aiohttp application (not started).

    ``upstream`` replaces the default :class:`UpstreamRouter` (the caller then owns and closes
    it); ``service_factory`` replaces :class:`PassthroughService`. Each plug-in is called with
    the app after its state keys are set and before the service's life cycle is registered, so
    what a plug-in starts in ``cleanup_ctx`` (e.g. the policy store) is up when the factory runs.
    """
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[MODELS] = {m.name: m for m in config.models}
    app[METRICS] = metrics or Metrics()
    owned = upstream is None
    app[UPSTREAM] = upstream or UpstreamRouter(metrics=app[METRICS])
    app[API_KEYS] = {os.environ[env]: profile for env, profile in config.auth.keys
                     if os.environ.get(env)}
    if config.auth.require_api_key and not app[API_KEYS]:
        log.warning("auth.require_api_key is set but none of the key env vars is set: "
                    "every request will be refused")
    app.add_routes(routes)
    for plugin in plugins:
        plugin(app)
    app.cleanup_ctx.append(_lifecycle(service_factory, owned))
    return app


def _lifecycle(service_factory: ServiceFactory | None, owned: bool
               ) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        config, upstream = app[CONFIG], app[UPSTREAM]
        sim = await _start_simulator(config)
        app[SIM] = sim
        if sim is not None and isinstance(upstream, UpstreamRouter):
            upstream.set_embedded_url(sim.url)
        service: ChatService
        if service_factory is None:
            service = PassthroughService(config, upstream)
        else:
            made = service_factory(app)
            service = await made if inspect.isawaitable(made) else made
        app[SERVICE] = service
        try:
            yield
        finally:
            closer = getattr(service, "aclose", None)
            if closer is not None:
                await closer()
            if owned:
                await upstream.close()
            if sim is not None:
                await sim.stop()
    return lifecycle


async def _start_simulator(config: Config) -> SimServer | None:
    embedded = [m for m in config.models if m.embedded]
    if not embedded:
        return None
    from proxy.sim.server import SimServer, load_model
    from proxy.sim.settings import SimSettings

    s = config.simulator
    settings = SimSettings(
        seed=s.seed, ttft_s=s.ttft_s, tpot_s=s.tpot_s, error_rate=s.error_rate,
        rate_limit_rate=s.rate_limit_rate, slow_rate=s.slow_rate, drop_rate=s.drop_rate,
        malformed_rate=s.malformed_rate,
        model_names=tuple(dict.fromkeys(provider_model_name(m) for m in embedded)))
    model = await asyncio.to_thread(load_model, settings.tasks_dir)
    sim = SimServer(settings, model)
    url = await sim.start("127.0.0.1", 0)
    log.info("embedded simulated upstream on %s", url)
    return sim
