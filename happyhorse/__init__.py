"""HappyHorse AI video API: typed models, errors, settings and the async client.

Nothing here imports discord; the bot's other layers build on these names.
"""

from happyhorse.client import HappyHorseClient
from happyhorse.dialects import NATIVE, SEED, Dialect, get_dialect, parse_state
from happyhorse.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DownloadError,
    DownloadTooLargeError,
    HappyHorseError,
    InsufficientCreditsError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    ValidationError,
    is_transient,
)
from happyhorse.models import (
    DEFAULT_MODEL,
    AspectRatio,
    GenerationRequest,
    Mode,
    Quality,
    Task,
    TaskState,
    TaskStatus,
)
from happyhorse.ratelimit import RateLimiter, parse_retry_after
from happyhorse.settings import USER_AGENT, VERSION, ClientSettings

__version__ = VERSION

__all__ = [
    "DEFAULT_MODEL",
    "NATIVE",
    "SEED",
    "USER_AGENT",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AspectRatio",
    "AuthenticationError",
    "BadRequestError",
    "ClientSettings",
    "Dialect",
    "DownloadError",
    "DownloadTooLargeError",
    "GenerationRequest",
    "HappyHorseClient",
    "HappyHorseError",
    "InsufficientCreditsError",
    "InvalidResponseError",
    "Mode",
    "Quality",
    "RateLimitError",
    "RateLimiter",
    "ServerError",
    "Task",
    "TaskState",
    "TaskStatus",
    "ValidationError",
    "__version__",
    "get_dialect",
    "is_transient",
    "parse_retry_after",
    "parse_state",
]
