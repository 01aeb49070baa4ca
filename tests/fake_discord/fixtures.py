"""Pytest fixtures and helpers for the Discord fake.

Use from a conftest.py::

    pytest_plugins = ["tests.fake_discord.fixtures"]

or import ``fake_discord`` / ``running_bot`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import pytest

from .driver import FakeDiscord
from .openapi import SpecViolation

if TYPE_CHECKING:
    import discord

log = logging.getLogger(__name__)


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord (token ``fake-token``), closed after the test.

    The test fails at teardown if the fake crashed or if any request broke Discord's OpenAPI
    spec (outside ``fake.expect_spec_violations()``); the message names each request's
    method, path, operation and the schema error.
    """
    async with FakeDiscord(token="fake-token") as fake:
        yield fake
        assert not fake.server.internal_errors, "the fake itself failed; see the log"
        assert not fake.spec_violations, spec_violation_report(fake.spec_violations)


def spec_violation_report(violations: Sequence[SpecViolation]) -> str:
    """The failure message for requests Discord's OpenAPI spec does not allow."""
    lines = [f"{len(violations)} request(s) Discord would refuse (tests/fake_discord/spec):"]
    lines += [f"  {violation}" for violation in violations]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    bot: discord.Client,
    *,
    timeout: float = 10.0,
    require_sync: bool = True,
    wait_ready: bool = True,
) -> AsyncIterator[discord.Client]:
    """Run an in-process discord.py client against ``fake`` for the duration of the block.

    Patches discord.py's URLs, starts ``bot.start(fake.token)``, waits until it has
    identified (and synced commands unless ``require_sync`` is False) and, if
    ``wait_ready``, until ``on_ready`` (pass ``guild_ready_timeout=0.05`` to the client to
    make that quick). On exit it awaits ``bot.close()`` and the start task. If the bot dies
    while starting (say, ``setup_hook`` raised) its exception is raised here.
    """
    with fake.patch_discord_py():
        task = asyncio.create_task(bot.start(fake.token), name="fake-discord-bot")
        try:
            connected = asyncio.ensure_future(
                fake.wait_until_connected(timeout, require_sync=require_sync)
            )
            done, _ = await asyncio.wait(
                {task, connected}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                connected.cancel()
                with contextlib.suppress(asyncio.CancelledError, AssertionError):
                    await connected
                task.result()
                raise AssertionError("the bot stopped before connecting to the fake")
            await connected
            if wait_ready:
                await asyncio.wait_for(bot.wait_until_ready(), timeout)
            yield bot
        finally:
            await bot.close()
            if not task.done():
                try:
                    await asyncio.wait_for(task, timeout)
                except TimeoutError:
                    log.warning("bot.start() did not return after close(); cancelling")
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            elif not task.cancelled() and task.exception() is not None:
                log.warning("bot task ended with %r", task.exception())
