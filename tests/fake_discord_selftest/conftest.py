"""Fixtures: a fake Discord with one guild, and the self-test bot connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.fake_discord import FakeChannel, FakeDiscord, FakeGuild, FakeMember, permissions
from tests.fake_discord.fixtures import fake_discord, running_bot

from .selftest_bot import SelfTestBot

__all__ = ["fake_discord"]  # the fixture, re-exported for pytest


@dataclass
class World:
    """The guild, channel and members every self-test uses."""

    fake: FakeDiscord
    guild: FakeGuild
    channel: FakeChannel
    alice: FakeMember
    admin: FakeMember


@pytest.fixture
async def world(fake_discord: FakeDiscord) -> World:
    """A guild with #general, an ordinary member and a member who may manage the guild."""
    guild = fake_discord.add_guild("Horse Club")
    channel = fake_discord.add_text_channel(guild, "general")
    alice = fake_discord.add_member(guild, "alice")
    admin = fake_discord.add_member(
        guild, "boss", permissions.DEFAULT_MEMBER | permissions.MANAGE_GUILD
    )
    return World(fake_discord, guild, channel, alice, admin)


@pytest.fixture
async def bot(world: World) -> AsyncIterator[SelfTestBot]:
    """The self-test bot, logged in, synced and ready; closed after the test."""
    client = SelfTestBot(world.guild.id)
    async with running_bot(world.fake, client):
        yield client
