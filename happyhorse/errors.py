"""Exceptions raised by the HappyHorse client.

Every exception carries a human-readable `.message` (for an API error: the API's own
words, truncated) and `.status` (the HTTP status or envelope code, or None when no answer
was received). None of them ever holds the API key: the client redacts it from anything
the server sends back before an exception is built.
"""

from __future__ import annotations

MAX_MESSAGE_LENGTH = 300


def truncate(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """Return `text` on one line, cut to at most `limit` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: max(limit - 1, 0)] + "…"


class HappyHorseError(Exception):
    """Base class of every error raised by this package."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.message} (status {self.status})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class ValidationError(HappyHorseError, ValueError):
    """A request field is invalid; raised before anything is sent. `.field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message

    def __repr__(self) -> str:
        return f"ValidationError({self.field!r}, {self.reason!r})"


class APIStatusError(HappyHorseError):
    """The API answered with an error status (HTTP status or `{code, ...}` envelope code)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, status=status)
        self.status: int = status


class BadRequestError(APIStatusError):
    """400: the payload is missing fields or holds invalid values."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, malformed, expired or unknown."""


class InsufficientCreditsError(APIStatusError):
    """402: the account lacks the credits for this request."""


class RateLimitError(APIStatusError):
    """429: too many requests. `.retry_after` is the server's Retry-After in seconds, if any."""

    def __init__(
        self, message: str, *, status: int = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"RateLimitError({self.message!r}, retry_after={self.retry_after!r})"


class ServerError(APIStatusError):
    """5xx: the server failed to finish the request."""


class APITimeoutError(HappyHorseError):
    """No (complete) answer arrived within the configured timeout."""


class APIConnectionError(HappyHorseError):
    """The connection failed or dropped.

    `.request_sent` is False only when the connection could not be opened at all
    (refused, DNS failure), so the server certainly never saw the request.
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class InvalidResponseError(HappyHorseError):
    """The answer was not JSON, or lacked what we need; the message says what is missing."""


class DownloadError(HappyHorseError):
    """A result download failed (error status, cut off, timed out, or refused)."""


class DownloadTooLargeError(DownloadError):
    """The download is larger than allowed. `.limit` and `.size` are in bytes.

    `.size` is the announced Content-Length when refused early, or the count of bytes
    received so far when refused late.
    """

    def __init__(self, limit: int, size: int) -> None:
        super().__init__(f"download is larger than the limit of {limit} bytes ({size} bytes)")
        self.limit = limit
        self.size = size


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
}


def error_for_status(
    status: int, message: str, *, retry_after: float | None = None
) -> APIStatusError:
    """Build the exception for an error `status` (HTTP status or envelope code)."""
    text = truncate(message) or f"HTTP {status}"
    if status == 429:
        return RateLimitError(text, retry_after=retry_after)
    if 500 <= status <= 599:
        return ServerError(text, status=status)
    cls = _STATUS_CLASSES.get(status, APIStatusError)
    return cls(text, status=status)


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying later: 429, 5xx, timeouts and connection errors."""
    return isinstance(exc, RateLimitError | ServerError | APITimeoutError | APIConnectionError)
