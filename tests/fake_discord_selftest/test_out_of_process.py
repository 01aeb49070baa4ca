"""A bot in another process reaches the fake through fake.env()."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .conftest import World

SCRIPT = Path(__file__).with_name("out_of_process_bot.py")


async def test_out_of_process_bot(world: World) -> None:
    """The subprocess logs in, identifies and posts; it is stopped cleanly afterwards."""
    env = {**os.environ, **world.fake.env(), "GREET_CHANNEL_ID": str(world.channel.id)}
    process = await asyncio.create_subprocess_exec(sys.executable, str(SCRIPT), env=env)
    try:
        await world.fake.wait_until_connected(timeout=20, require_sync=False)
        message = await world.fake.wait_for_message(world.channel, timeout=20)
        assert message["content"] == "hello from another process"
    finally:
        process.terminate()
        await process.wait()
