"""A fix for discord.py's heartbeat latency race (false "Can't keep up" warnings).

discord.py (up to 2.7.1) sends each heartbeat from its keep-alive thread through the event
loop and records the send time only after the thread wakes up again. When the gateway
answers quickly and the process is busy (the thread waits for the GIL), the loop handles
the ACK first and measures it against the previous heartbeat: the bot logs "Can't keep
up, shard ID None websocket is <one heartbeat interval> behind" and reports that latency,
although its event loop never stalled (the bench's loop watch sees tens of milliseconds).
Upstream fixed it the same way in Rapptz/discord.py#10448: the send time is stamped on
the event loop, just before the heartbeat is written.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from discord.gateway import DiscordWebSocket

_MARK = "_happyhorse_stamps_send_time"


def install_heartbeat_latency_fix() -> None:
    """Stamp `_last_send` on the loop before each heartbeat is sent (idempotent)."""
    original: Callable[[DiscordWebSocket, Any], Awaitable[None]] = DiscordWebSocket.send_heartbeat
    if getattr(original, _MARK, False):
        return

    async def send_heartbeat(self: DiscordWebSocket, data: Any) -> None:
        keep_alive = getattr(self, "_keep_alive", None)
        if keep_alive is not None:
            keep_alive._last_send = time.perf_counter()
        await original(self, data)

    setattr(send_heartbeat, _MARK, True)
    DiscordWebSocket.send_heartbeat = send_heartbeat  # type: ignore[method-assign]
