"""The lean HTTP/1.1 pool against a raw asyncio server: body framings and stale keep-alives."""

from __future__ import annotations

import asyncio

import pytest

from proxy.upstream.http1 import Http1Pool


async def _server(replies: list[bytes], close_after_each: bool = False):
    """A server answering each request (any body) with the next raw reply."""
    served = {"n": 0, "conns": 0, "closed": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served["conns"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                writer.write(replies[min(served["n"], len(replies) - 1)])
                served["n"] += 1
                await writer.drain()
                if close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        served["closed"] += 1  # the client closed it (or, with close_after_each, the server)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/chat/completions", served


async def _shutdown(pool: Http1Pool, server: asyncio.Server) -> None:
    await pool.close()
    await asyncio.sleep(0.02)  # let the handlers see EOF and close their side
    server.close()
    await server.wait_closed()


async def test_content_length_chunked_and_reuse() -> None:
    replies = [b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-A: 1\r\n\r\n{\"a\":1}",
               b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\nRetry-After: 2\r\n\r\n"
               b"3\r\n{\"b\r\n4\r\n\":2}\r\n0\r\n\r\n"]
    server, url, served = await _server(replies)
    pool = Http1Pool()
    try:
        first = await pool.post(url, b"{}", {"Content-Type": "application/json"})
        assert (first.status, first.body, first.headers["x-a"]) == (200, b'{"a":1}', "1")
        second = await pool.post(url, b"{}", {})
        assert (second.status, second.body, second.headers["retry-after"]) == (429, b'{"b":2}', "2")
        assert served["conns"] == 1  # kept alive
    finally:
        await _shutdown(pool, server)


async def test_server_closing_idle_connection_is_retried_once() -> None:
    server, url, served = await _server([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
                                        close_after_each=True)
    pool = Http1Pool()
    try:
        for _ in range(3):
            assert (await pool.post(url, b"x", {})).body == b"ok"
            await asyncio.sleep(0.01)
        assert served["n"] == 3 and served["conns"] == 3
    finally:
        await _shutdown(pool, server)


async def test_connections_idle_past_the_bound_are_closed() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server_a, url_a, served_a = await _server([ok])
    server_b, url_b, served_b = await _server([ok])
    pool = Http1Pool(idle_s=0.2)
    try:
        await pool.post(url_a, b"x", {})
        await pool.post(url_a, b"x", {})
        assert served_a["conns"] == 1  # reused while fresh
        await asyncio.sleep(0.3)
        await pool.post(url_a, b"x", {})  # taken too old: closed, a new one opened
        await asyncio.sleep(0.05)
        assert (served_a["conns"], served_a["closed"]) == (2, 1)
        await asyncio.sleep(0.3)
        await pool.post(url_b, b"x", {})  # a return closes what idled too long, for every host
        await asyncio.sleep(0.05)
        assert (served_a["conns"], served_a["closed"]) == (2, 2)
        assert (served_b["conns"], served_b["closed"]) == (1, 0)
    finally:
        await _shutdown(pool, server_b)
        server_a.close()
        await server_a.wait_closed()


async def test_truncated_body_raises() -> None:
    server, url, _ = await _server([b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"half"],
                                   close_after_each=True)
    pool = Http1Pool()
    try:
        with pytest.raises(asyncio.IncompleteReadError):
            await pool.post(url, b"x", {})
    finally:
        await _shutdown(pool, server)


async def test_close_delimited_body_and_204() -> None:
    server, url, served = await _server([b"HTTP/1.1 204 No Content\r\n\r\n",
                                         b"HTTP/1.0 200 OK\r\n\r\nuntil close"],
                                        close_after_each=True)
    pool = Http1Pool()
    try:
        empty = await pool.post(url, b"x", {})
        assert (empty.status, empty.body) == (204, b"")
        await asyncio.sleep(0.01)
        assert (await pool.post(url, b"x", {})).body == b"until close"
        assert served["conns"] == 2
    finally:
        await _shutdown(pool, server)


async def test_response_arriving_in_pieces() -> None:
    """Head, chunk sizes and trailers split across reads are put back together."""
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    served = {"conns": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served["conns"] += 1
        try:
            for _ in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
                for i in range(len(reply)):
                    writer.write(reply[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(0)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        served["closed"] += 1  # the client closed it (or, with close_after_each, the server)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    pool = Http1Pool()
    try:
        for _ in range(2):
            assert (await pool.post(url, b"{}", {})).body == b"hello world"
        assert served["conns"] == 1
    finally:
        await _shutdown(pool, server)


@pytest.mark.parametrize("reply", [
    b"SMTP nonsense\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n",
    # a declared chunk past the body limit fails at once, before the pool buffers it
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\nab",
])
async def test_malformed_response_raises_value_error(reply: bytes) -> None:
    server, url, _ = await _server([reply], close_after_each=True)
    pool = Http1Pool()
    try:
        with pytest.raises(ValueError):
            await pool.post(url, b"x", {})
    finally:
        await _shutdown(pool, server)
