"""The heartbeat's send time is recorded before the heartbeat leaves (no false lag)."""

from __future__ import annotations

from typing import Any

from discord.gateway import DiscordWebSocket

from botkit.gateway_heartbeat import install_heartbeat_latency_fix


class KeepAlive:
    _last_send = 0.0


class Socket:
    def __init__(self, keep_alive: KeepAlive) -> None:
        self.keep_alive = keep_alive
        self.stamped_before_send: list[float] = []

    async def send_str(self, text: str) -> None:
        self.stamped_before_send.append(self.keep_alive._last_send)


async def test_send_time_is_stamped_on_the_loop_before_the_heartbeat_is_written() -> None:
    """An ACK handled right after the write is measured against this heartbeat's send."""
    install_heartbeat_latency_fix()
    install_heartbeat_latency_fix()  # idempotent
    ws: Any = DiscordWebSocket.__new__(DiscordWebSocket)
    ws._keep_alive = KeepAlive()
    ws.socket = Socket(ws._keep_alive)
    await ws.send_heartbeat({"op": 1, "d": 7})
    [stamped] = ws.socket.stamped_before_send
    assert stamped > 0.0
