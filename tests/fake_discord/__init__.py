"""A local Discord (REST API v10, gateway, CDN) for end-to-end tests with real discord.py.

See tests/README.md, section "The Discord fake".
"""

from . import permissions
from .driver import DiscordPyPatch, FakeDiscord
from .interactions import InteractionRecord
from .models import (
    AckTimeout,
    CommandValidationError,
    DiscordAPIError,
    FakeAttachment,
    FakeChannel,
    FakeDiscordError,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
)
from .server import HeldResponse, InjectedFailure, RecordedRequest, UploadedFile

__all__ = [
    "AckTimeout",
    "CommandValidationError",
    "DiscordAPIError",
    "DiscordPyPatch",
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeDiscordError",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "HeldResponse",
    "InjectedFailure",
    "InteractionRecord",
    "RecordedRequest",
    "UploadedFile",
    "permissions",
]
