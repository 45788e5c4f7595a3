"""The sidecar's HTTP/1.1 client against small asyncio servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ouro_obs.sidecar.upstream import Upstream, UpstreamClient, UpstreamError, UpstreamTimeouts

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Upstream]:
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handler(reader, writer)
        writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield Upstream("127.0.0.1", port)
        for writer in writers:
            writer.close()
        await asyncio.sleep(0)


async def read_all(
    client: UpstreamClient, method: bytes = b"GET", body: bytes | None = None
) -> tuple[int, bytes]:
    async def source() -> tuple[bytes, bool]:
        return body or b"", False

    response = await client.request(
        method,
        b"/",
        [(b"host", b"upstream")],
        source if body is not None else None,
        str(len(body)).encode() if body is not None else None,
    )
    chunks = []
    more = not response.complete
    while more:
        data, more = await response.read()
        chunks.append(data)
    await response.aclose()
    return response.status, b"".join(chunks)


async def test_a_kept_alive_connection_closed_by_the_upstream_is_retried_once_for_a_get() -> None:
    connections = 0

    async def one_answer_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)  # keep-alive by default, yet the next request gets no answer
        await reader.readuntil(b"\r\n\r\n")

    async with serving(one_answer_per_connection) as upstream:
        client = UpstreamClient(upstream)
        first = await read_all(client)
        second = await read_all(client)
        await client.aclose()
    assert (first, second) == ((200, b"ok"), (200, b"ok"))
    assert connections == 2


async def test_a_post_on_a_connection_the_upstream_closed_is_not_replayed() -> None:
    requests = 0

    async def one_answer_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal requests
        await reader.readuntil(b"\r\n\r\n")
        requests += 1
        writer.write(OK)
        await reader.readuntil(b"\r\n\r\n")
        requests += 1

    async with serving(one_answer_per_connection) as upstream:
        client = UpstreamClient(upstream)
        await read_all(client)
        with pytest.raises(UpstreamError) as raised:
            await read_all(client, b"POST", b"order=1")
        await client.aclose()
    assert raised.value.reason == "disconnected"
    assert raised.value.status == 502
    assert requests == 2  # the POST reached the upstream once and was not sent again


async def test_garbage_instead_of_a_response_is_a_protocol_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    async with serving(garbage) as upstream:
        with pytest.raises(UpstreamError) as raised:
            await read_all(UpstreamClient(upstream))
    assert (raised.value.reason, raised.value.status) == ("protocol_error", 502)


async def test_a_body_cut_short_is_reported_as_disconnected() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    async with serving(short) as upstream:
        client = UpstreamClient(upstream)
        response = await client.request(b"GET", b"/", [(b"host", b"u")])
        data, more = await response.read()
        with pytest.raises(UpstreamError) as raised:
            await response.read()
    assert (data, more) == (b"abc", True)
    assert raised.value.reason == "disconnected"


async def test_head_responses_end_with_their_head_and_the_connection_is_reused() -> None:
    async def head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")

    async with serving(head) as upstream:
        client = UpstreamClient(upstream)
        results = [await read_all(client, b"HEAD") for _ in range(3)]
        idle = client.idle_connections
        await client.aclose()
    assert results == [(200, b"")] * 3
    assert idle == 1


async def test_an_upstream_that_accepts_no_connection_times_out_as_504() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        # Fill the accept queue, so the kernel drops the next SYN and connect() hangs.
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(listener.getsockname())
            fillers.append(filler)
        client = UpstreamClient(
            Upstream(*listener.getsockname()), UpstreamTimeouts(connect=0.2, read=1, write=1)
        )
        try:
            with pytest.raises(UpstreamError) as raised:
                await read_all(client)
        finally:
            for filler in fillers:
                filler.close()
    assert (raised.value.reason, raised.value.status) == ("connect_timeout", 504)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:8080", "only plain http://"),
        ("http://:8080", "has no host"),
        ("http://127.0.0.1:99999", "invalid port"),
    ],
)
def test_an_upstream_url_that_cannot_be_used_says_what_to_write(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Upstream.parse(url)


def test_an_upstream_url_without_a_port_means_80() -> None:
    assert Upstream.parse("http://app.local") == Upstream("app.local", 80)


async def test_a_tunnel_the_upstream_opens_is_a_protocol_error_not_an_assertion() -> None:
    """A 2xx to CONNECT switches protocols in h11; the client has no tunnel to give."""

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serving(tunnel) as upstream:
        client = UpstreamClient(upstream)
        with pytest.raises(UpstreamError) as raised:
            await client.request(b"CONNECT", b"example.com:443", [(b"host", b"example.com:443")])
        idle = client.idle_connections
        await client.aclose()
    assert raised.value.reason == "protocol_error"
    assert idle == 0  # the switched connection is closed, never pooled
