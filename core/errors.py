"""User-facing wording for every failure the bot can meet: one place for each message.

Cogs show these strings; the core raises `Refusal` with them. Nothing here includes the
API key, the Discord token or a raw exception text that might carry either.
"""

from __future__ import annotations

import math

from core.i18n import Number, _
from happyhorse.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    HappyHorseError,
    InsufficientCreditsError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    ValidationError,
)


class Refusal(Exception):
    """A request was refused before it cost anything; `message` is shown to the user.

    `message` is usually a `core.i18n.Message` (English as a ``str``), which the cogs say
    in the reader's language with ``tr(refusal.message)``.

    `retry_after` is set when trying again later may work (seconds).
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def _seconds(value: float | None, fallback: int = 30) -> int:
    if value is None or value <= 0:
        return fallback
    return max(1, math.ceil(value))


def describe_submit_error(exc: HappyHorseError) -> Refusal:
    """Turn an API error raised while submitting a job into the user's message."""
    if isinstance(exc, ValidationError):
        return Refusal(_("That request is not valid: {reason}", reason=exc.message))
    if isinstance(exc, AuthenticationError):
        return Refusal(
            _(
                "The bot is misconfigured: the video service rejected its API key. "
                "A server admin has to fix the bot's settings. You were not charged."
            )
        )
    if isinstance(exc, InsufficientCreditsError):
        return Refusal(
            _(
                "The video service is out of credits, so no videos can be made right now. "
                "The bot's operator has been told. You were not charged."
            )
        )
    if isinstance(exc, RateLimitError):
        wait = _seconds(exc.retry_after)
        return Refusal(
            _(
                "The video service is busy. Try again in {seconds} s. You were not charged.",
                seconds=Number(wait),
            ),
            retry_after=float(wait),
        )
    if isinstance(exc, ServerError):
        return Refusal(
            _(
                "The video service had an internal error. Try again in {seconds} s. "
                "You were not charged.",
                seconds=Number(30),
            ),
            retry_after=30.0,
        )
    if isinstance(exc, BadRequestError):
        return Refusal(
            _(
                "The video service refused this request: {reason}. "
                "Change the prompt or settings and try again. You were not charged.",
                reason=exc.message.rstrip(". "),
            )
        )
    if isinstance(exc, APITimeoutError | APIConnectionError):
        return Refusal(
            _(
                "The video service did not answer in time. Try again in a minute. "
                "You were not charged."
            ),
            retry_after=60.0,
        )
    if isinstance(exc, InvalidResponseError):
        return Refusal(
            _(
                "The video service sent an answer the bot could not read. Try again later. "
                "You were not charged."
            )
        )
    if isinstance(exc, APIStatusError):
        return Refusal(
            _(
                "The video service answered with an error ({status}). Try again later. "
                "You were not charged.",
                status=exc.status,
            )
        )
    return Refusal(_("The video service failed. Try again later. You were not charged."))


def operator_hint(exc: HappyHorseError) -> str | None:
    """What the operator must fix, for errors that are configuration problems; else None."""
    if isinstance(exc, AuthenticationError):
        return (
            "HappyHorse rejected the API key (401). Check HAPPYHORSE_API_KEY and "
            "HAPPYHORSE_BASE_URL in the bot's environment, then restart the bot."
        )
    if isinstance(exc, InsufficientCreditsError):
        return "HappyHorse account is out of credits (402). Top up the account."
    return None
