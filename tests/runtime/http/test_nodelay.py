"""Every TCP socket of the data plane has Nagle off (TCP_NODELAY), on stock asyncio and on uvloop.

With Nagle on, a stream's second small write waits for the peer's delayed ACK (~40 ms on Linux).
Stock asyncio turns it off only on sockets whose ``proto`` says TCP, so each ``bind_socket`` must
make its listening socket that way; uvloop turns it off on every TCP transport.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
import uvloop

from runtime.http import UpstreamPool
from runtime.http import bind_socket as layer_bind
from runtime.router.server import bind_socket as router_bind
from runtime.server.serving import bind_socket as server_bind

pytestmark = pytest.mark.timeout(30)

BINDERS: dict[str, Callable[[str, int], socket.socket]] = {
    "runtime.http": layer_bind,
    "router": router_bind,
    "pipeline server": server_bind,
}
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def _nodelay(sock: socket.socket | None) -> int:
    assert sock is not None
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def _accepted_and_upstream_nodelay(bind: Callable[[str, int], socket.socket]) -> tuple[int, int]:
    """TCP_NODELAY of (the socket a server accepted on ``bind``'s socket, the pool's socket to it)."""
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(_nodelay(writer.get_extra_info("socket")))
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()

    listening = bind("127.0.0.1", 0)
    listening.setblocking(False)
    server = await asyncio.start_server(answer, sock=listening)
    pool = UpstreamPool(read=5)
    try:
        port = listening.getsockname()[1]
        reply = await pool.request("GET", f"http://127.0.0.1:{port}/")
        upstream = _nodelay(reply._conn.transport.get_extra_info("socket"))  # type: ignore[union-attr]
        assert await reply.read() == b"ok"
        return await accepted, upstream
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("loop_name", list(LOOPS))
@pytest.mark.parametrize("owner", list(BINDERS))
def test_accepted_and_upstream_sockets_have_nagle_off(owner: str, loop_name: str) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        accepted, upstream = runner.run(_accepted_and_upstream_nodelay(BINDERS[owner]))
    assert accepted != 0 and upstream != 0
