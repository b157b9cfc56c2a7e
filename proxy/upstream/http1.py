"""A minimal keep-alive HTTP/1.1 client for the hot path: one JSON ``POST``, whole response.

aiohttp's client spends ~0.3 ms of CPU per request on generality the proxy does not need
(cookies, redirects, tracing, URL normalisation). This pool is an :class:`asyncio.Protocol` per
connection that parses the response as its bytes arrive and wakes the caller once, when it is
complete (no stream reader, no future per read); the request head is built from a prefix cached
per URL. It handles ``http://`` and ``https://``, ``Content-Length``, chunked and
close-delimited bodies, and nothing else: no redirects, no compression (it never asks for any),
no proxies. Streaming stays on aiohttp.

A connection that fails before any byte of the response came back after being reused is retried
once on a fresh one (the server closed it while idle). A cancelled or failed request closes its
connection, so the upstream sees the client go away.

Idle keep-alive connections are closed once idle longer than ``idle_s`` (30 s by default), with
no timer: a connection taken from the pool that idled too long is closed instead of used, and a
connection returned to it closes, at most once per ``idle_s``, every host's that did (the idle
deques are oldest first, so each sweep stops at the first fresh one).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

__all__ = ["Http1Pool", "HttpResponse"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024
_IDLE_S = 30.0


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names; the last value wins
    body: bytes


class _Target(NamedTuple):
    key: tuple[str, str, int]  # (scheme, host, port): the pool of idle connections
    secure: bool
    prefix: bytes  # b"POST /path HTTP/1.1\r\nHost: netloc\r\n"


@lru_cache(maxsize=256)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    prefix = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode("latin-1")
    return _Target((parts.scheme, host, port), secure, prefix)


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


class _Conn(asyncio.Protocol):
    """One connection; at most one request in flight. :meth:`send` writes a request and
    returns the future of its ``(response, keep_alive)``, set by :meth:`data_received`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.used = False  # answered a request before (so the server may have closed it idle)
        self.closed = False
        self.idle_since = 0.0  # time.monotonic() when it was last returned to the pool
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[HttpResponse, bool]] | None = None
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, HTTP/1.1
        self._length = -1  # body bytes expected; -1 chunked, -2 until close
        self._chunks: list[bytes] = []
        self._got = 0  # body bytes (chunked) received so far

    # -- protocol callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: unusable from now on
            self.close()
            return
        self._buf += data
        try:
            done = self._parse()
        except ValueError as exc:
            self._fail(exc)
            return
        if done is not None:
            self._waiter = None
            waiter.set_result(done)

    def eof_received(self) -> bool:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._head is not None and self._length == -2:  # the body ends at close
                status, headers, _ = self._head
                self._waiter = None
                waiter.set_result((HttpResponse(status, headers, bytes(self._buf)), False))
            elif self._unanswered():
                self._fail(_StaleConnection())
            else:
                expected = self._length if self._length >= 0 else None
                self._fail(asyncio.IncompleteReadError(bytes(self._buf), expected))
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                self.eof_received()
            elif self._unanswered():
                self._fail(_StaleConnection())
            else:
                self._fail(exc)

    # -- requests -----------------------------------------------------------------------------
    def send(self, request: bytes) -> asyncio.Future[tuple[HttpResponse, bool]]:
        assert self.transport is not None
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self._head, self._length, self._chunks, self._got = None, -1, [], 0
        self.transport.write(request)
        return waiter

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _unanswered(self) -> bool:
        """A reused connection that got no byte of its response: the server closed it idle."""
        return self._head is None and not self._buf and self.used

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    # -- parsing ------------------------------------------------------------------------------
    def _parse(self) -> tuple[HttpResponse, bool] | None:
        """The response and whether the connection stays open, once it is complete."""
        buf = self._buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("response head too large")
                return None
            self._head = self._parse_head(buf[:end].decode("latin-1"))
            del buf[:end + 4]
        status, headers, http11 = self._head
        if self._length == -2:
            if len(buf) > _MAX_BODY:
                raise ValueError("close-delimited body too large")
            return None  # until the connection closes
        if self._length >= 0:
            if len(buf) < self._length:
                return None
            body = bytes(buf[:self._length])
            del buf[:self._length]
        else:
            body = self._parse_chunks()
            if body is None:
                return None
        keep = http11 and headers.get("connection", "").lower() != "close" and not buf
        return HttpResponse(status, headers, body), keep

    def _parse_head(self, head: str) -> tuple[int, dict[str, str], bool]:
        status_line, *header_lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x response: {status_line[:40]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._length = -1
        elif "content-length" in headers:
            self._length = int(headers["content-length"])
            if not 0 <= self._length <= _MAX_BODY:
                raise ValueError(f"bad content-length {self._length}")
        elif status in (204, 304):
            self._length = 0
        else:
            self._length = -2
        return status, headers, version == "HTTP/1.1"

    def _parse_chunks(self) -> bytes | None:
        """Consume the complete chunks in the buffer; the body once the last one (and the
        trailers) arrived."""
        buf = self._buf
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("chunk size line too long")
                return None
            size = int(bytes(buf[:eol]).split(b";", 1)[0].strip(), 16)
            if size < 0:
                raise ValueError(f"bad chunk size {size}")
            if size == 0:  # the last chunk: then trailer lines, if any, and a blank line
                rest = eol + 2
                if buf[rest:rest + 2] == b"\r\n":
                    end = rest + 2
                else:
                    found = buf.find(b"\r\n\r\n", rest)
                    if found < 0:
                        return None
                    end = found + 4
                del buf[:end]
                return b"".join(self._chunks)
            if self._got + size > _MAX_BODY:  # before buffering a chunk that size
                raise ValueError("chunked body too large")
            if len(buf) < eol + 2 + size + 2:
                return None
            self._got += size
            self._chunks.append(bytes(buf[eol + 2:eol + 2 + size]))
            del buf[:eol + 2 + size + 2]


class Http1Pool:
    """Keep-alive connections per ``(scheme, host, port)``, at most ``limit`` open at once, each
    kept at most ``idle_s`` idle (see the module docstring)."""

    def __init__(self, limit: int = 512, idle_s: float = _IDLE_S) -> None:
        self._idle: dict[tuple[str, str, int], deque[_Conn]] = {}  # oldest first
        self._slots = asyncio.Semaphore(limit)
        self._ssl: ssl.SSLContext | None = None
        self._closed = False
        self._idle_s = idle_s
        self._next_sweep = 0.0

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
        """POST ``body`` to ``url``; raises ``OSError`` / ``asyncio.IncompleteReadError`` /
        ``ValueError`` (a malformed response) on failure."""
        target = _target(url)
        head = "".join([f"Content-Length: {len(body)}\r\n",
                        *(f"{k}: {v}\r\n" for k, v in headers.items()), "\r\n"])
        request = target.prefix + head.encode("latin-1") + body
        async with self._slots:
            for _attempt in range(2):
                conn = await self._acquire(target)
                try:
                    resp, keep = await conn.send(request)
                except _StaleConnection:
                    continue  # on a fresh or another idle connection; twice: give up below
                except BaseException:
                    conn.close()
                    raise
                if keep and not self._closed:
                    self._release(target.key, conn)
                else:
                    conn.close()
                return resp
        raise ConnectionResetError("connection closed twice before a response")

    def _release(self, key: tuple[str, str, int], conn: _Conn) -> None:
        """Put ``conn`` back as the newest idle connection of ``key``; sweep if one is due."""
        now = time.monotonic()
        conn.used, conn.idle_since = True, now
        self._idle.setdefault(key, deque()).append(conn)
        if now >= self._next_sweep:
            self._next_sweep = now + self._idle_s
            oldest = now - self._idle_s
            for idle in self._idle.values():
                while idle and idle[0].idle_since < oldest:
                    idle.popleft().close()

    async def _acquire(self, target: _Target) -> _Conn:
        idle = self._idle.get(target.key)
        if idle:
            oldest = time.monotonic() - self._idle_s
            while idle:
                conn = idle.pop()  # the newest: if it idled too long, so did every other
                if conn.usable() and conn.idle_since >= oldest:
                    return conn
                conn.close()
        context = None
        if target.secure:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        transport, conn = await asyncio.get_running_loop().create_connection(
            _Conn, target.key[1], target.key[2], ssl=context)
        conn.transport = transport  # uvloop may call connection_made only after returning
        return conn

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
