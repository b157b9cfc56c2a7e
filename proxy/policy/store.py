"""The live policy set: atomic reloads from the watcher, ``SIGHUP`` and the admin endpoint.

A reload reads every configured file, validates them all and combines them; only then is the
``current`` reference swapped (one assignment, so readers see the old set or the new one, never a
mix). On any problem the old set stays, the reason is logged (one error line) and
``iapo_policy_reload_total{result="error"}`` counts it; an unexpected exception while validating a
candidate is such a problem too, never a traceback (that is logged at debug level).
``iapo_policy_info{id,version}`` is 1 for each loaded policy (labels of replaced ones are removed).

The watcher polls every ``interval_s``: it stats each file (inode, size, mtime, ctime) and acts
only once a change has been *stable for one poll* (same stat on two consecutive ticks), so a file
caught half-written by an editor or ``cp`` is not even parsed until its writer has paused; a file
that then still fails validation is counted as an error once per distinct content and retried on
every later change. Only content whose hash differs from the loaded (or last failed) one leads to a
reload, so touching a file changes nothing. Every ``rehash_every`` ticks the files are read and
hashed even with an unchanged stat (coarse file-system timestamps can hide a quick rewrite).
Explicit reloads (``SIGHUP``, ``POST /admin/reload``) load at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.actions import Selection
from proxy.config import Config
from proxy.policy.load import PolicyError
from proxy.policy.policyset import PolicySet, build_policy_set, parse_policy_files, read_files

__all__ = ["PolicyMetrics", "PolicyStore", "ReloadResult"]

log = logging.getLogger("proxy.policy")

_Sig = tuple[tuple[int, int, int, int] | None, ...]
_Hashes = tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """The outcome of one reload attempt (``trigger``: initial, watch, sighup, admin, manual)."""

    ok: bool
    trigger: str
    at: float
    policies: tuple[tuple[str, str], ...] = ()  # (id, version) now served
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"result": "ok" if self.ok else "error", "trigger": self.trigger, "at": self.at,
                "policies": [{"id": i, "version": v} for i, v in self.policies],
                "problems": list(self.problems)}


class PolicyMetrics:
    """``iapo_policy_reload_total{result}`` and ``iapo_policy_info{id,version}`` on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reloads = Counter("iapo_policy_reload", "Policy reload attempts by result.",
                               ["result"], registry=registry)
        self.info = Gauge("iapo_policy_info", "Loaded policies (1 per id and version).",
                          ["id", "version"], registry=registry)
        for result in ("ok", "error"):
            self.reloads.labels(result)
        self._shown: set[tuple[str, str]] = set()

    def show(self, policies: Sequence[tuple[str, str]]) -> None:
        new = set(policies)
        for labels in self._shown - new:
            with contextlib.suppress(KeyError):
                self.info.remove(*labels)
        for labels in new:
            self.info.labels(*labels).set(1)
        self._shown = new


def _stat(paths: Sequence[Path]) -> _Sig:
    sig = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            sig.append(None)
        else:
            sig.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(sig)


def _hashes(files: Sequence[tuple[Path, bytes | None]]) -> _Hashes:
    return tuple(None if raw is None else hashlib.sha256(raw).hexdigest() for _, raw in files)


class PolicyStore:
    """Holds the current immutable :class:`PolicySet`; an :class:`~proxy.actions.ActionSource`."""

    def __init__(self, config: Config, registry: CollectorRegistry | None = None, *,
                 paths: Sequence[Path] | None = None, interval_s: float | None = None,
                 rehash_every: int = 10, history_size: int = 20) -> None:
        self.config = config
        self.paths = tuple(Path(p) for p in (config.policies.paths if paths is None else paths))
        self.interval_s = config.policies.watch_interval_s if interval_s is None else interval_s
        self.rehash_every = max(1, rehash_every)
        self.metrics = PolicyMetrics(registry if registry is not None else CollectorRegistry())
        self.history: deque[ReloadResult] = deque(maxlen=history_size)
        self._current = build_policy_set((), config)
        self._lock = asyncio.Lock()
        self._swap_lock = threading.Lock()
        self._sig: _Sig = ()
        self._loaded: _Hashes = ()
        self._failed: _Hashes | None = None
        self._pending = False
        self._ticks = 0
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sighup_loop: asyncio.AbstractEventLoop | None = None

    # -- serving -------------------------------------------------------------------------------
    @property
    def current(self) -> PolicySet:
        """The set to serve a request with; take it once per request."""
        return self._current

    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        return self._current.select(task, weights, max_n)

    # -- loading -------------------------------------------------------------------------------
    def load_initial(self) -> PolicySet:
        """Load every file at start-up; raises :class:`PolicyError` (nothing is counted)."""
        sig = _stat(self.paths)
        files = read_files(self.paths)
        new = self._parse(files)
        self._commit(new, sig, _hashes(files), "initial", count=False)
        return new

    def reload(self, trigger: str = "manual") -> ReloadResult:
        """Read, validate and swap now (blocking; the async servers use :meth:`reload_async`)."""
        sig = _stat(self.paths)
        files = read_files(self.paths)
        return self._apply(files, sig, trigger)

    async def reload_async(self, trigger: str = "manual") -> ReloadResult:
        async with self._lock:
            return await asyncio.to_thread(self.reload, trigger)

    def _parse(self, files: Sequence[tuple[Path, bytes | None]]) -> PolicySet:
        """:func:`parse_policy_files`, with any unexpected exception (a bug, a file that
        defeats a check) turned into a :class:`PolicyError`, so a reload can only fail cleanly."""
        try:
            return parse_policy_files(files, self.config)
        except PolicyError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a candidate does, the old set stays
            log.debug("policy files %s: unexpected error", [str(p) for p, _ in files], exc_info=True)
            where = ", ".join(str(p) for p, _ in files) or "policies"
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise PolicyError([f"{where}: <root>: cannot be loaded (unexpected {reason})"],
                              "policies") from None

    def _apply(self, files: Sequence[tuple[Path, bytes | None]], sig: _Sig, trigger: str) -> ReloadResult:
        hashes = _hashes(files)
        try:
            new = self._parse(files)
        except PolicyError as exc:
            return self._fail(exc.problems, sig, hashes, trigger)
        return self._commit(new, sig, hashes, trigger, count=True)

    def _commit(self, new: PolicySet, sig: _Sig, hashes: _Hashes, trigger: str, *, count: bool) -> ReloadResult:
        with self._swap_lock:
            new = replace(new, loaded_at=time.time())  # the moment it starts being served
            self._current = new
            self._sig, self._loaded, self._failed, self._pending = sig, hashes, None, False
            loaded = tuple((p.id, p.version) for p in new.policies)
            self.metrics.show(loaded)
            if count:
                self.metrics.reloads.labels("ok").inc()
            result = ReloadResult(ok=True, trigger=trigger, at=new.loaded_at, policies=loaded)
            self.history.append(result)
        log.info("policy %s: loaded %s", trigger,
                 ", ".join(f"{i}@{v}" for i, v in loaded) or "no policies (static actions)")
        return result

    def _fail(self, problems: Sequence[str], sig: _Sig, hashes: _Hashes, trigger: str) -> ReloadResult:
        with self._swap_lock:
            self._sig, self._failed, self._pending = sig, hashes, False
            self.metrics.reloads.labels("error").inc()
            kept = tuple((p.id, p.version) for p in self._current.policies)
            result = ReloadResult(ok=False, trigger=trigger, at=time.time(), policies=kept,
                                  problems=tuple(problems))
            self.history.append(result)
        log.error("policy %s: reload failed, keeping %s: %s", trigger,
                  ", ".join(f"{i}@{v}" for i, v in kept) or "static actions", "; ".join(problems))
        return result

    # -- watching ------------------------------------------------------------------------------
    async def poll(self) -> ReloadResult | None:
        """One watcher tick; returns the reload it made, if any."""
        async with self._lock:
            self._ticks += 1
            sig = await asyncio.to_thread(_stat, self.paths)
            if sig != self._sig:
                self._sig, self._pending = sig, True  # changed: act once it is stable
                return None
            if not self._pending and self._ticks % self.rehash_every:
                return None
            files = await asyncio.to_thread(read_files, self.paths)
            hashes = _hashes(files)
            if hashes in (self._loaded, self._failed):
                self._pending = False
                return None
            if not self._pending:  # content changed under an unchanged stat: wait one tick more
                self._pending = True
                return None
            if await asyncio.to_thread(_stat, self.paths) != sig:
                self._sig = ()  # written while we read: look again next tick
                return None
            return await asyncio.to_thread(self._apply, files, sig, "watch")

    async def watch(self) -> None:
        """Poll forever (cancel to stop); a failing tick is logged, never fatal."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("policy watcher tick failed")

    def start_watching(self) -> asyncio.Task[None]:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self.watch(), name="policy-watcher")
        return self._watcher

    async def stop(self) -> None:
        """Stop the watcher and pending SIGHUP reloads; remove the SIGHUP handler."""
        self.remove_sighup()
        tasks = [t for t in (self._watcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watcher = None

    # -- SIGHUP --------------------------------------------------------------------------------
    def install_sighup(self) -> bool:
        """Reload on ``SIGHUP`` (main thread of the running loop only); False when impossible."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (AttributeError, NotImplementedError, RuntimeError, ValueError) as exc:
            log.warning("policy: cannot reload on SIGHUP here (%s)", exc)
            return False
        self._sighup_loop = loop
        return True

    def remove_sighup(self) -> None:
        if self._sighup_loop is not None:
            with contextlib.suppress(Exception):
                self._sighup_loop.remove_signal_handler(signal.SIGHUP)
            self._sighup_loop = None

    def _on_sighup(self) -> None:
        log.info("policy: SIGHUP received, reloading")
        task = asyncio.get_running_loop().create_task(self.reload_async("sighup"))
        self._tasks.add(task)
        task.add_done_callback(self._sighup_done)

    def _sighup_done(self, task: asyncio.Task[ReloadResult]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:  # retrieved: no asyncio warning
            log.error("policy sighup: reload failed: %s: %s", type(exc).__name__, exc)
