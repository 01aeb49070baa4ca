"""Interactions the driver sent and what the bot did with them."""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable
from typing import Any

from .models import (
    JSON,
    AckTimeout,
    FakeChannel,
    FakeGuild,
    FakeState,
    FakeUser,
    StoredMessage,
)
from .snowflake import snowflake_time

# Interaction types
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
MODAL_SUBMIT = 5

# Callback (response) types
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
MODAL = 9

#: Which callback types each interaction type accepts.
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {
        CHANNEL_MESSAGE,
        DEFERRED_CHANNEL_MESSAGE,
        DEFERRED_UPDATE_MESSAGE,
        UPDATE_MESSAGE,
        MODAL,
    },
    MODAL_SUBMIT: {
        CHANNEL_MESSAGE,
        DEFERRED_CHANNEL_MESSAGE,
        DEFERRED_UPDATE_MESSAGE,
        UPDATE_MESSAGE,
    },
}


class InteractionRecord:
    """One interaction sent to the bot: its payload, the bot's acknowledgement and messages.

    Times are measured from the moment the INTERACTION_CREATE was dispatched.
    """

    def __init__(
        self,
        state: FakeState,
        *,
        interaction_id: int,
        kind: int,
        payload: JSON,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: FakeUser,
        ack_deadline: float,
        token_lifetime: float,
        source_message_id: int | None = None,
        parent: InteractionRecord | None = None,
    ) -> None:
        self._state = state
        self.id = interaction_id
        self.token: str = payload["token"]
        self.kind = kind
        self.payload = payload
        self.guild = guild
        self.channel = channel
        self.user = user
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        self.source_message_id = source_message_id
        self.parent = parent
        self.dispatched_at = time.monotonic()
        #: Callback type the bot answered with (4, 5, 6, 7 or 9), None until acknowledged.
        self.ack_type: int | None = None
        self.ack_at: float | None = None
        #: The callback's ``data`` as sent (message fields, or the modal).
        self.ack_data: JSON | None = None
        #: Message created/updated by the acknowledgement (types 4, 5, 7), as it was then.
        self.initial_response: JSON | None = None
        #: The modal (type 9 ``data``) if the bot answered with one.
        self.modal: JSON | None = None
        self.original_message_id: int | None = None
        self.followup_ids: list[int] = []
        #: ``(status, code)`` of callbacks the fake rejected (e.g. ``(404, 10062)`` when late).
        self.callback_errors: list[tuple[int, int]] = []
        self.loading = False
        self.ephemeral_response = False
        self._expired = False

    # -- state -----------------------------------------------------------------------------

    @property
    def acked(self) -> bool:
        """Whether the bot acknowledged the interaction in time."""
        return self.ack_type is not None

    @property
    def ack_delay(self) -> float | None:
        """Seconds between dispatch and acknowledgement."""
        return None if self.ack_at is None else self.ack_at - self.dispatched_at

    @property
    def created_at(self) -> float:
        """POSIX time encoded in the interaction id."""
        return snowflake_time(self.id)

    def ack_too_late(self) -> bool:
        """Whether the acknowledgement window has closed."""
        return time.monotonic() - self.dispatched_at > self.ack_deadline

    def token_expired(self) -> bool:
        """Whether the interaction token no longer works (401, 50027)."""
        return self._expired or time.time() > self.created_at + self.token_lifetime

    def expire(self) -> None:
        """Make the token expire now, as if 15 minutes had passed."""
        self._expired = True

    def _message(self, message_id: int | None) -> JSON | None:
        if message_id is None:
            return None
        stored = self._state.messages.get(message_id)
        if stored is None or stored.deleted:
            return None
        return copy.deepcopy(stored.data)

    def original_message(self) -> JSON | None:
        """The current state of ``@original`` (after edits), None if none or deleted."""
        return self._message(self.original_message_id)

    @property
    def followups(self) -> list[JSON]:
        """Current state of every follow-up message, oldest first.

        After a deferred response (type 5) the first follow-up fills in the deferred
        "thinking" message, so it has the same id as :meth:`original_message`.
        """
        found = [self._message(i) for i in self.followup_ids]
        return [m for m in found if m is not None]

    def stored_original(self) -> StoredMessage | None:
        """The stored ``@original`` message (internal)."""
        if self.original_message_id is None:
            return None
        return self._state.messages.get(self.original_message_id)

    # -- waiting ---------------------------------------------------------------------------

    async def wait_for_ack(self, timeout: float | None = None) -> int:
        """Wait until acknowledged and return the callback type.

        ``timeout`` counts from dispatch and defaults to the ack deadline (3 s), so this
        raises :class:`AckTimeout` exactly when Discord would have failed the interaction.
        """
        limit = self.ack_deadline if timeout is None else timeout
        remaining = self.dispatched_at + limit - time.monotonic()
        try:
            await self._state.wait_until(
                lambda: self.acked, max(remaining, 0.0), f"ack of interaction {self.id}"
            )
        except AssertionError:
            raise AckTimeout(
                f"interaction {self.id} was not acknowledged within {limit:.2f}s "
                f"(rejected callbacks: {self.callback_errors})"
            ) from None
        assert self.ack_type is not None
        return self.ack_type

    async def wait_for_followup(self, n: int = 1, timeout: float = 15.0) -> JSON:
        """Wait until there are ``n`` follow-ups and return the ``n``-th (1-based)."""
        await self._state.wait_until(
            lambda: len(self.followup_ids) >= n, timeout, f"follow-up #{n} of {self.id}"
        )
        message = self._message(self.followup_ids[n - 1])
        assert message is not None, "follow-up was deleted"
        return message

    async def wait_for_original(
        self, predicate: Callable[[JSON], bool] | None = None, timeout: float = 15.0
    ) -> JSON:
        """Wait until ``@original`` exists and satisfies ``predicate``; return it."""

        def check() -> JSON | None:
            message = self.original_message()
            if message is None:
                return None
            if predicate is not None and not predicate(message):
                return None
            return message

        result: JSON = await self._state.wait_until(check, timeout, f"@original of {self.id}")
        return result

    def __repr__(self) -> str:
        return f"<InteractionRecord id={self.id} kind={self.kind} ack_type={self.ack_type}>"


def new_token() -> str:
    """An interaction token that looks like Discord's."""
    return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(64)


def build_payload(
    state: FakeState,
    *,
    interaction_id: int,
    kind: int,
    data: JSON,
    guild: FakeGuild | None,
    channel: FakeChannel,
    user: FakeUser,
    message: JSON | None = None,
    locale: str = "en-US",
) -> JSON:
    """The INTERACTION_CREATE payload exactly as Discord shapes it."""
    bot_id = state.bot.id
    channel_data = channel.to_dict(bot_id)
    payload: JSON = {
        "id": str(interaction_id),
        "application_id": str(state.application_id),
        "type": kind,
        "data": data,
        "channel_id": str(channel.id),
        "token": new_token(),
        "version": 1,
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "app_permissions": str(channel.bot_permissions),
        "attachment_size_limit": (guild.filesize_limit if guild is not None else 10 * 1024 * 1024),
    }
    if guild is not None:
        member = guild.members.get(user.id)
        if member is None:
            raise AssertionError(f"{user.username} is not a member of {guild.name}")
        member_data = member.to_dict()
        member_data["permissions"] = str(channel.permissions_for(member))
        member_data["unusual_dm_activity_until"] = None
        channel_data["permissions"] = str(channel.permissions_for(member))
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
            guild_locale=guild.preferred_locale,
            member=member_data,
            authorizing_integration_owners={"0": str(guild.id)},
            context=0,
        )
    else:
        payload.update(
            user=user.to_dict(),
            authorizing_integration_owners={"0": str(user.id)},
            context=1,
        )
    payload["channel"] = channel_data
    if message is not None:
        payload["message"] = message
    return payload


def interaction_metadata(record: InteractionRecord) -> JSON:
    """``interaction_metadata`` (and the older ``interaction``) for response messages."""
    data = record.payload["data"]
    meta: JSON = {
        "id": str(record.id),
        "type": record.kind,
        "user": record.user.to_dict(),
        "authorizing_integration_owners": record.payload["authorizing_integration_owners"],
    }
    extra: JSON = {"interaction_metadata": meta}
    if record.kind == APPLICATION_COMMAND:
        meta["name"] = data["name"]
        meta["command_type"] = data.get("type", 1)
        if data.get("target_id"):
            meta["target_id"] = data["target_id"]
        extra["interaction"] = {
            "id": str(record.id),
            "type": record.kind,
            "name": data["name"],
            "user": record.user.to_dict(),
        }
    elif record.kind == MESSAGE_COMPONENT and record.source_message_id is not None:
        meta["interacted_message_id"] = str(record.source_message_id)
    return extra


def response_message_type(record: InteractionRecord) -> int:
    """Message type of responses: 20 chat input, 23 context menu, 0 otherwise."""
    if record.kind == APPLICATION_COMMAND:
        return 20 if record.payload["data"].get("type", 1) == 1 else 23
    return 0


def describe(record: InteractionRecord) -> dict[str, Any]:
    """A short summary for error messages."""
    return {"id": record.id, "kind": record.kind, "ack_type": record.ack_type}
