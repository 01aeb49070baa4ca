"""In-memory state of the sandbox: tasks, credits, the rate-limit window and injected faults.

Nothing here speaks HTTP; ``app.py`` turns this state into wire answers. Every time is
read from one injectable clock (``time.monotonic`` by default) so tests can move it.
"""

from __future__ import annotations

import enum
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Dialect = Literal["seed", "native"]
FaultEndpoint = Literal["generate", "status", "download", "any"]
Endpoint = Literal["generate", "status", "download"]

FAULT_ENDPOINTS: tuple[str, ...] = get_args(FaultEndpoint)
ENDPOINTS: tuple[str, ...] = get_args(Endpoint)


def _has_word(text: str, word: str) -> bool:
    """Whether ``word`` is one of the words of ``text`` (case-insensitive)."""
    words = "".join(c if c.isalnum() else " " for c in text.casefold()).split()
    return word.casefold() in words


@dataclass(frozen=True)
class SandboxConfig:
    """How one sandbox instance behaves.

    ``api_key=None`` accepts any non-empty bearer token; ``credits=None`` is unlimited;
    ``rate_limit=None`` disables rate limiting (all API endpoints, per ``rate_window``);
    ``status_rate_limit`` additionally limits status calls alone (per
    ``status_rate_window``). Times are seconds from task creation. A prompt holding
    ``big_word`` gets a large clip instead of the tiny one: twice the frame size, 24 fps,
    fresh detail in every frame, encoded at ``big_bitrate`` bits/s (a 5 s clip at the
    default is about 13 MiB, over Discord's 10 MiB limit), to exercise re-encoding.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None
    dialect: Dialect = "seed"
    processing_after: float = 0.5
    complete_after: float = 2.0
    fail_word: str | None = "FAIL"
    credits: int | None = None
    rate_limit: int | None = None
    rate_window: float = 60.0
    image_field: str = "image_url"
    status_rate_limit: int | None = None
    status_rate_window: float = 1.0
    big_word: str | None = "BIGCLIP"
    big_bitrate: int = 20_000_000

    def __post_init__(self) -> None:
        """Reject settings that could never work, naming the setting."""
        if self.dialect not in ("seed", "native"):
            raise ValueError(f"dialect must be 'seed' or 'native', not {self.dialect!r}")
        if self.processing_after < 0 or self.complete_after < 0:
            raise ValueError("processing_after and complete_after must not be negative")
        if self.processing_after > self.complete_after:
            raise ValueError("processing_after must not be later than complete_after")
        if self.credits is not None and self.credits < 0:
            raise ValueError("credits must be None (unlimited) or >= 0")
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError("rate_limit must be None (off) or >= 1")
        if self.rate_window <= 0:
            raise ValueError("rate_window must be positive")
        if self.status_rate_limit is not None and self.status_rate_limit < 1:
            raise ValueError("status_rate_limit must be None (off) or >= 1")
        if self.status_rate_window <= 0:
            raise ValueError("status_rate_window must be positive")
        if not self.image_field:
            raise ValueError("image_field must not be empty")
        if self.big_bitrate < 100_000:
            raise ValueError("big_bitrate must be at least 100000 bits/s")


class Phase(enum.StrEnum):
    """Where a sandbox task is in its life, independent of the wire dialect."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass
class SandboxTask:
    """One accepted generation request and what has been forced onto it."""

    task_id: str
    created_at: float
    model: str
    prompt: str
    mode: str
    quality: str
    duration: int
    aspect_ratio: str
    sound: bool
    image_urls: tuple[str, ...]
    cost: int
    forced_phase: Phase | None = None
    forced_message: str | None = None
    forced_at: float | None = None
    #: This task's own completion time (seconds after creation); None: the config's.
    complete_after: float | None = None
    #: Serve the result padded to exactly this many bytes (a large video); None: as encoded.
    result_size: int | None = None
    #: Seconds every download of the result hangs before the first byte (a stalled CDN).
    download_stall: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The task's request fields as a JSON-ready mapping (no phase: that needs a clock)."""
        return {
            "task_id": self.task_id,
            "model": self.model,
            "prompt": self.prompt,
            "mode": self.mode,
            "quality": self.quality,
            "duration": self.duration,
            "aspect_ratio": self.aspect_ratio,
            "sound": self.sound,
            "image_urls": list(self.image_urls),
            "cost": self.cost,
        }


@dataclass
class Fault:
    """One injected misbehaviour, applied to the next ``count`` matching requests.

    ``status`` answers with that HTTP status (``None``: answer normally, or 200 when a
    ``body`` is given); ``body`` replaces the answer (a ``str`` is sent byte for byte, a
    ``dict`` as JSON); ``content_type`` overrides the default (``text/plain`` for ``str``,
    ``application/json`` for ``dict``); ``delay`` sleeps first; ``retry_after`` adds that
    ``Retry-After`` header. Download only: ``truncate`` announces the full length but sends
    half and drops the connection; ``pad_to`` serves a file of exactly that many bytes;
    ``omit_length`` sends the file chunked without ``Content-Length``; ``redirect_to``
    answers 302 with that ``Location`` (a CDN that sends the client elsewhere).
    """

    endpoint: FaultEndpoint
    status: int | None = None
    count: int = 1
    body: str | dict[str, Any] | None = None
    content_type: str | None = None
    delay: float = 0.0
    retry_after: str | None = None
    truncate: bool = False
    pad_to: int | None = None
    omit_length: bool = False
    redirect_to: str | None = None

    def __post_init__(self) -> None:
        """Reject faults that cannot be applied, naming the field."""
        if self.endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(FAULT_ENDPOINTS)}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status between 100 and 599")
        if self.count == 0 or self.count < -1:
            raise ValueError("count must be a positive number of requests, or -1 for forever")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        if self.pad_to is not None and self.pad_to < 0:
            raise ValueError("pad_to must not be negative")

    def to_json(self) -> dict[str, Any]:
        """The fault as a JSON-ready mapping (the same fields ``POST /_sandbox/faults`` takes)."""
        return {
            "endpoint": self.endpoint,
            "status": self.status,
            "count": self.count,
            "body": self.body,
            "content_type": self.content_type,
            "delay": self.delay,
            "retry_after": self.retry_after,
            "truncate": self.truncate,
            "pad_to": self.pad_to,
            "omit_length": self.omit_length,
            "redirect_to": self.redirect_to,
        }


_FAULT_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "status": (int,),
    "count": (int,),
    "body": (str, dict),
    "content_type": (str,),
    "delay": (int, float),
    "retry_after": (str, int, float),
    "truncate": (bool,),
    "pad_to": (int,),
    "omit_length": (bool,),
    "redirect_to": (str,),
}


class FaultQueue:
    """Injected faults, consumed in FIFO order by the requests they match."""

    def __init__(self) -> None:
        """Start with no faults."""
        self._faults: list[Fault] = []

    def add(
        self,
        endpoint: FaultEndpoint,
        *,
        status: int | None = None,
        count: int = 1,
        body: str | dict[str, Any] | None = None,
        content_type: str | None = None,
        delay: float = 0.0,
        retry_after: str | None = None,
        truncate: bool = False,
        pad_to: int | None = None,
        omit_length: bool = False,
        redirect_to: str | None = None,
    ) -> Fault:
        """Queue a fault for the next ``count`` requests to ``endpoint`` (-1: forever).

        ``endpoint`` is ``"generate"``, ``"status"``, ``"download"`` or ``"any"`` (all three).
        See :class:`Fault` for what each keyword does.
        """
        fault = Fault(
            endpoint=endpoint,
            status=status,
            count=count,
            body=body,
            content_type=content_type,
            delay=delay,
            retry_after=retry_after,
            truncate=truncate,
            pad_to=pad_to,
            omit_length=omit_length,
            redirect_to=redirect_to,
        )
        self._faults.append(fault)
        return fault

    def add_from_json(self, payload: Mapping[str, Any]) -> Fault:
        """Queue a fault described by a JSON object; ``ValueError`` names a bad field."""
        endpoint = payload.get("endpoint")
        if endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(FAULT_ENDPOINTS)}")
        kwargs: dict[str, Any] = {}
        for name, value in payload.items():
            if name == "endpoint" or value is None:
                continue
            types = _FAULT_FIELD_TYPES.get(name)
            if types is None:
                raise ValueError(f"unknown fault field {name!r}")
            if isinstance(value, bool) and bool not in types:
                raise ValueError(f"{name} has the wrong type")
            if not isinstance(value, types):
                raise ValueError(f"{name} has the wrong type")
            kwargs[name] = str(value) if name == "retry_after" else value
        return self.add(endpoint, **kwargs)

    def take(self, endpoint: Endpoint) -> Fault | None:
        """Consume and return the oldest fault matching ``endpoint``, or ``None``."""
        for index, fault in enumerate(self._faults):
            if fault.endpoint in (endpoint, "any"):
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        del self._faults[index]
                return fault
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    @property
    def pending(self) -> tuple[Fault, ...]:
        """The faults still queued, oldest first."""
        return tuple(self._faults)

    def __len__(self) -> int:
        """How many distinct faults are still queued."""
        return len(self._faults)


class RateWindow:
    """A sliding-window request counter: at most ``limit`` requests per ``window`` seconds."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        """Allow ``limit`` requests in any ``window`` seconds, timed by ``clock``."""
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: deque[float] = deque()

    def hit(self) -> float | None:
        """Record a request; return ``None`` if allowed, else seconds until one would be."""
        now = self._clock()
        while self._hits and self._hits[0] <= now - self.window:
            self._hits.popleft()
        if len(self._hits) >= self.limit:
            return self._hits[0] + self.window - now
        self._hits.append(now)
        return None


@dataclass(frozen=True)
class StatusCall:
    """One status request as the sandbox saw it: which task, when it arrived and when it
    was answered (on the state's clock), and the HTTP status of the answer."""

    task_id: str
    received: float
    answered: float
    status: int


def task_cost(duration: int, quality: str) -> int:
    """Credits one task costs: 1 per started 5 seconds, doubled for ``pro``."""
    units = max(1, math.ceil(duration / 5))
    return units * (2 if quality == "pro" else 1)


def new_task_id() -> str:
    """A fresh task id shaped like the contract's ``hh_task_93d2a7c4f81d``."""
    return "hh_task_" + secrets.token_hex(6)


@dataclass
class SandboxState:
    """Everything the sandbox remembers, shared by its request handlers.

    ``tasks`` maps task id to task; ``request_counts`` counts every request per endpoint
    (``generate``, ``status``, ``download``), accepted or not; ``rate_limited`` counts the
    429s the rate limits answered, per endpoint; ``status_counts`` counts accepted status
    calls per task id; ``status_log`` records every status request with its arrival and
    answer times (``status_calls_per_second`` counts them); ``credits`` is the balance
    left (``None``: unlimited); ``faults`` is the fault-injection queue.

    For load tests: ``completion_times`` hands each new task, in creation order, its own
    completion time (seconds after creation; the config's once empty), and
    ``result_size`` pads every new task's result to that many bytes.
    """

    config: SandboxConfig
    clock: Callable[[], float] = time.monotonic
    tasks: dict[str, SandboxTask] = field(default_factory=dict)
    request_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    faults: FaultQueue = field(default_factory=FaultQueue)
    credits: int | None = None
    rate_window: RateWindow | None = None
    status_window: RateWindow | None = None
    rate_limited: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    status_counts: dict[str, int] = field(default_factory=dict)
    status_log: list[StatusCall] = field(default_factory=list)
    completion_times: deque[float] = field(default_factory=deque)
    result_size: int | None = None

    def __post_init__(self) -> None:
        """Take the starting balance and rate limits from the config."""
        self.credits = self.config.credits
        if self.config.rate_limit is not None:
            self.rate_window = RateWindow(
                self.config.rate_limit, self.config.rate_window, self.clock
            )
        if self.config.status_rate_limit is not None:
            self.status_window = RateWindow(
                self.config.status_rate_limit, self.config.status_rate_window, self.clock
            )

    def count(self, endpoint: Endpoint) -> None:
        """Record one request to ``endpoint``."""
        self.request_counts[endpoint] = self.request_counts.get(endpoint, 0) + 1

    def check_rate(self, endpoint: Endpoint | None = None) -> float | None:
        """Record an API request; ``None`` if within the limits, else seconds to wait.

        A refused request is counted in ``rate_limited`` under ``endpoint``.
        """
        wait = None if self.rate_window is None else self.rate_window.hit()
        if wait is None and endpoint == "status" and self.status_window is not None:
            wait = self.status_window.hit()
        if wait is not None and endpoint is not None:
            self.rate_limited[endpoint] = self.rate_limited.get(endpoint, 0) + 1
        return wait

    def status_calls_per_second(self) -> dict[int, int]:
        """Status requests (answered or refused) per whole second of the state's clock."""
        counts: dict[int, int] = {}
        for call in self.status_log:
            second = math.floor(call.received)
            counts[second] = counts.get(second, 0) + 1
        return counts

    def count_status(self, task_id: str) -> None:
        """Record one answered status call for ``task_id``."""
        self.status_counts[task_id] = self.status_counts.get(task_id, 0) + 1

    def completes_at(self, task: SandboxTask) -> float | None:
        """When (on the state's clock) ``task`` became or becomes completed; None if never."""
        if task.forced_phase is not None:
            return task.forced_at if task.forced_phase is Phase.COMPLETED else None
        if self.fail_reason(task) is not None:
            return None
        return task.created_at + self._complete_after(task)

    def _complete_after(self, task: SandboxTask) -> float:
        if task.complete_after is not None:
            return task.complete_after
        return self.config.complete_after

    def can_afford(self, cost: int) -> bool:
        """Whether the balance covers ``cost`` credits."""
        return self.credits is None or self.credits >= cost

    def create_task(
        self,
        *,
        model: str,
        prompt: str,
        mode: str,
        quality: str,
        duration: int,
        aspect_ratio: str,
        sound: bool,
        image_urls: tuple[str, ...] = (),
    ) -> SandboxTask:
        """Charge the credits and record a new task created now."""
        cost = task_cost(duration, quality)
        if self.credits is not None:
            if self.credits < cost:
                raise ValueError("insufficient credits")
            self.credits -= cost
        task_id = new_task_id()
        while task_id in self.tasks:
            task_id = new_task_id()
        task = SandboxTask(
            task_id=task_id,
            created_at=self.clock(),
            model=model,
            prompt=prompt,
            mode=mode,
            quality=quality,
            duration=duration,
            aspect_ratio=aspect_ratio,
            sound=sound,
            image_urls=image_urls,
            cost=cost,
            complete_after=self.completion_times.popleft() if self.completion_times else None,
            result_size=self.result_size,
        )
        self.tasks[task_id] = task
        return task

    def fail_reason(self, task: SandboxTask) -> str | None:
        """Why ``task`` will fail (its prompt holds the fail word), or ``None``."""
        word = self.config.fail_word
        if word and _has_word(task.prompt, word):
            return f"Video generation failed: the prompt contains the sandbox fail word {word!r}."
        return None

    def wants_big_clip(self, task: SandboxTask) -> bool:
        """Whether ``task``'s prompt holds the big-clip word (see ``SandboxConfig``)."""
        word = self.config.big_word
        return bool(word) and _has_word(task.prompt, word or "")

    def phase(self, task: SandboxTask) -> tuple[Phase, str]:
        """The task's phase and readable message at the current clock."""
        if task.forced_phase is not None:
            return task.forced_phase, task.forced_message or _MESSAGES[task.forced_phase]
        age = self.clock() - task.created_at
        complete_after = self._complete_after(task)
        if age < min(self.config.processing_after, complete_after):
            return Phase.QUEUED, _MESSAGES[Phase.QUEUED]
        if age < complete_after:
            return Phase.PROCESSING, _MESSAGES[Phase.PROCESSING]
        reason = self.fail_reason(task)
        if reason is not None:
            return Phase.FAILED, reason
        return Phase.COMPLETED, _MESSAGES[Phase.COMPLETED]

    def force(self, task_id: str, phase: Phase, message: str | None = None) -> SandboxTask:
        """Pin a task to ``phase`` regardless of the clock; ``KeyError`` if unknown."""
        task = self.tasks[task_id]
        task.forced_phase = phase
        task.forced_message = message
        task.forced_at = self.clock()
        return task


_MESSAGES: dict[Phase, str] = {
    Phase.QUEUED: "Task is queued.",
    Phase.PROCESSING: "Video generation in progress.",
    Phase.COMPLETED: "Video generation completed.",
    Phase.FAILED: "Video generation failed.",
}
