"""The simulator as the config's embedded upstream (models with ``api_base: embedded``)."""

from __future__ import annotations

import asyncio
import logging

from proxy.config import Config
from proxy.sim.server import SimServer, load_model
from proxy.sim.settings import SimSettings
from proxy.upstream.direct import provider_model_name

__all__ = ["start_embedded"]

log = logging.getLogger(__name__)


async def start_embedded(config: Config) -> SimServer | None:
    """Start the simulator on 127.0.0.1 at a free port with the config's ``simulator`` settings,
    answering as every embedded model; ``None`` when no model is embedded. Stop it with
    ``await sim.stop()``."""
    embedded = [m for m in config.models if m.embedded]
    if not embedded:
        return None
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
