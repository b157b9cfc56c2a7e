"""A minimal keep-alive HTTP/1.1 client for the hot path: one JSON ``POST``, whole response.

aiohttp's client spends ~0.3 ms of CPU per request on generality the proxy does not need
(cookies, redirects, tracing, URL normalisation); this pool does the same round trip in ~0.12 ms,
which is what lets the proxy keep up with fan-out (see ``benchmarks/overhead.py``). It handles
``http://`` and ``https://``, ``Content-Length`` and chunked bodies, and nothing else: no
redirects, no compression (it never asks for any), no proxies. Streaming stays on aiohttp.

A connection that fails before any byte of the response came back after being reused is retried
once on a fresh one (the server closed it while idle). A cancelled or failed request closes its
connection, so the upstream sees the client go away.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Http1Pool", "HttpResponse"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names; the last value wins
    body: bytes


class _Conn:
    __slots__ = ("reader", "writer", "used")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.used = reader, writer, False

    def close(self) -> None:
        self.writer.close()


class Http1Pool:
    """Keep-alive connections per ``(scheme, host, port)``, at most ``limit`` open at once."""

    def __init__(self, limit: int = 512) -> None:
        self._idle: dict[tuple[str, str, int], deque[_Conn]] = {}
        self._slots = asyncio.Semaphore(limit)
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
        """POST ``body`` to ``url``; raises ``OSError`` / ``asyncio.IncompleteReadError`` /
        ``ValueError`` (a malformed response) on failure."""
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        key = (parts.scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}",
                 f"Content-Length: {len(body)}"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with self._slots:
            for attempt in (0, 1):
                conn = await self._acquire(key, secure)
                reused = conn.used
                try:
                    conn.writer.write(request)
                    resp, keep = await self._read(conn.reader, first_byte_retry=reused and attempt == 0)
                except _StaleConnection:
                    conn.close()
                    continue
                except BaseException:
                    conn.close()
                    raise
                if keep and not self._closed:
                    conn.used = True
                    self._idle.setdefault(key, deque()).append(conn)
                else:
                    conn.close()
                return resp
        raise ConnectionResetError("connection closed twice before a response")

    async def _acquire(self, key: tuple[str, str, int], secure: bool) -> _Conn:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                return conn
            conn.close()
        context = None
        if secure:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        reader, writer = await asyncio.open_connection(key[1], key[2], ssl=context,
                                                       limit=_MAX_HEAD)
        return _Conn(reader, writer)

    @staticmethod
    async def _read(reader: asyncio.StreamReader, *, first_byte_retry: bool
                    ) -> tuple[HttpResponse, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if first_byte_retry and not exc.partial:
                raise _StaleConnection from None
            raise
        except ConnectionResetError:
            if first_byte_retry:
                raise _StaleConnection from None
            raise
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x response: {status_line[:40]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if not 0 <= length <= _MAX_BODY:
                raise ValueError(f"bad content-length {length}")
            body = await reader.readexactly(length)
        elif status in (204, 304):
            body = b""
        else:  # delimited by close
            return HttpResponse(status, headers, await reader.read(_MAX_BODY)), False
        keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        return HttpResponse(status, headers, body), keep

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > _MAX_BODY:
            raise ValueError("chunked body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
