"""Typed application state keys (``app[CONFIG]``, ...) shared by the server and its plug-ins."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.config import Config
from proxy.metrics import Metrics
from proxy.serving import ChatService
from proxy.upstream.base import Upstream

__all__ = ["API_KEYS", "CONFIG", "METRICS", "MODELS", "REQUEST_ID", "REQUEST_MODEL", "SERVICE", "SIM", "UPSTREAM"]

CONFIG = web.AppKey("iapo_config", Config)
UPSTREAM = web.AppKey("iapo_upstream", Upstream)
SERVICE = web.AppKey("iapo_service", ChatService)
METRICS = web.AppKey("iapo_metrics", Metrics)
SIM = web.AppKey("iapo_sim", Any)  # proxy.sim.server.SimServer | None (imported lazily)
API_KEYS = web.AppKey("iapo_api_keys", dict)  # key value -> its ApiKeyConfig
MODELS = web.AppKey("iapo_models", dict)  # virtual model name -> ModelConfig

REQUEST_ID = web.RequestKey("iapo_request_id", str)
REQUEST_MODEL = web.RequestKey("iapo_request_model", str)
