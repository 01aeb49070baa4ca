"""Discord permission bits (integers), as the REST API and gateway use them."""

from __future__ import annotations

CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_AUDIT_LOG = 1 << 7
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
SEND_TTS_MESSAGES = 1 << 12
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
MANAGE_ROLES = 1 << 28
MANAGE_WEBHOOKS = 1 << 29
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38

#: Every bit Discord currently defines (and a few spare ones; unknown bits are harmless).
ALL = (1 << 51) - 1

#: What a bot normally needs in a text channel: read, write, files, embeds, history, threads.
ALL_TEXT = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | CREATE_PUBLIC_THREADS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
)

#: An ordinary member: can see, talk and use application commands.
DEFAULT_MEMBER = ALL_TEXT

#: Tags for messages and error text.
NAMES: dict[int, str] = {
    value: name
    for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, int) and value & (value - 1) == 0 and value
}


def resolve(permissions: int) -> int:
    """Return ``permissions`` with ADMINISTRATOR expanded to every bit, as Discord does."""
    return ALL if permissions & ADMINISTRATOR else permissions


def has(permissions: int, needed: int) -> bool:
    """Whether ``permissions`` (ADMINISTRATOR counts as all) include all of ``needed``."""
    return resolve(permissions) & needed == needed
