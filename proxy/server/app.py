"""The app factory: ``create_app(config) -> web.Application``.

By default the app is the whole product: the policy store (hot reload, ``/admin/*``) as a
plug-in and the inference-aware :class:`proxy.pipeline.service.PipelineService` as the chat
service. Start-up and shutdown live in ``cleanup_ctx``: the embedded simulator (when a model has
``api_base: embedded``) on 127.0.0.1 at a free port, the shared upstream (one HTTP session for
the process) and the chat service. State is under the typed keys of :mod:`proxy.server.state`.

Virtual models: every configured model, plus ``iapo-<profile>`` for every profile (the first
model, answered with that profile's weights) unless a model already has that name.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import web

from proxy.config import Config, ModelConfig
from proxy.metrics import Metrics
from proxy.pipeline.weights import MODEL_ALIAS_PREFIX
from proxy.server.middleware import error_middleware
from proxy.server.routes import routes
from proxy.server.state import API_KEYS, CONFIG, METRICS, MODELS, SERVICE, SIM, UPSTREAM
from proxy.serving import ChatService
from proxy.upstream.base import Upstream
from proxy.upstream.router import UpstreamRouter

__all__ = ["ServiceFactory", "create_app", "pipeline_service", "policy_plugin"]

log = logging.getLogger(__name__)

# Called once at start-up, after the upstream is ready; reads what it needs from ``app``.
ServiceFactory = Callable[[web.Application], ChatService | Awaitable[ChatService]]


def create_app(config: Config, *, upstream: Upstream | None = None,
               service_factory: ServiceFactory | None = None,
               metrics: Metrics | None = None,
               plugins: Sequence[Callable[[web.Application], None]] | None = None,
               ) -> web.Application:
    """The proxy as an aiohttp application (not started).

    ``upstream`` replaces the default :class:`UpstreamRouter` (the caller then owns and closes
    it); ``service_factory`` replaces the pipeline (e.g. with
    :class:`proxy.serving.PassthroughService`). Each plug-in is called with the app after its
    state keys are set and before the service's life cycle is registered, so what a plug-in
    starts in ``cleanup_ctx`` is up when the factory runs; ``None`` means the policy store.
    """
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[MODELS] = _virtual_models(config)
    app[METRICS] = metrics or Metrics()
    owned = upstream is None
    app[UPSTREAM] = upstream or UpstreamRouter(metrics=app[METRICS])
    app[API_KEYS] = {os.environ[key.key_env]: key for key in config.auth.keys
                     if os.environ.get(key.key_env)}
    if config.auth.require_api_key and not app[API_KEYS]:
        log.warning("auth.require_api_key is set but none of the key env vars is set: "
                    "every request will be refused")
    _warn_unset_upstream_keys(config)
    app.add_routes(routes)
    for plugin in (policy_plugin,) if plugins is None else plugins:
        plugin(app)
    app.cleanup_ctx.append(_lifecycle(service_factory, owned))
    return app


def _lifecycle(service_factory: ServiceFactory | None, owned: bool
               ) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        from proxy.sim.embedded import start_embedded

        config, upstream = app[CONFIG], app[UPSTREAM]
        sim = await start_embedded(config)
        app[SIM] = sim
        service: ChatService | None = None
        try:  # a service that fails to build still stops the simulator and closes the upstream
            if sim is not None and isinstance(upstream, UpstreamRouter):
                upstream.set_embedded_url(sim.url)
            made = (service_factory or pipeline_service)(app)
            service = await made if inspect.isawaitable(made) else made
            app[SERVICE] = service
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


def _warn_unset_upstream_keys(config: Config) -> None:
    """One warning per model whose ``api_key_env`` names an unset variable (the embedded
    simulator takes no key): its upstream will most likely refuse every call."""
    for i, model in enumerate(config.models):
        env = model.api_key_env
        if env and not model.embedded and not os.environ.get(env):
            log.warning("models[%d].api_key_env: environment variable %s is not set: model "
                        "'%s' is called without a key", i, env, model.name)


def _virtual_models(config: Config) -> dict[str, ModelConfig]:
    models = {m.name: m for m in config.models}
    if config.models:
        for profile in config.profiles:
            models.setdefault(f"{MODEL_ALIAS_PREFIX}{profile}", config.models[0])
    return models


def policy_plugin(app: web.Application) -> None:
    """The policy store on the app's config and metrics registry (see :mod:`proxy.policy.web`)."""
    from proxy.policy.web import setup_policies

    setup_policies(app, app[CONFIG], app[METRICS].registry)


async def pipeline_service(app: web.Application) -> ChatService:
    """The inference-aware service; actions from the policy store when there is one, else the
    config's static table. The task classifier loads (or trains) off the event loop."""
    from proxy.pipeline.classify import TaskClassifier
    from proxy.pipeline.service import PipelineService
    from proxy.policy.web import POLICY_STORE

    config = app[CONFIG]
    classifier = await asyncio.to_thread(TaskClassifier.from_config, config)
    return PipelineService(config, app[UPSTREAM], app.get(POLICY_STORE), classifier=classifier,
                           registry=app[METRICS].registry,
                           keepalive_s=config.server.stream_keepalive_s)
