"""The submit gate: whether new jobs may be sent to the API now (the 402 pause, the 429 hold).

A 402 (the API account is out of credits) pauses submission for everyone; the queue probes
again after a backoff that doubles up to a cap, and the first accepted submit lifts the
pause. A 429 holds submission until its Retry-After.

The gate lives in the database (`Store.gate`, one row), not in a process: a 402 seen by
one process pauses every other at their next look, and a restart keeps the pause and its
backoff instead of finding out again with the next submit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from core.i18n import Message, Number, _, ngettext
from storage.models import GateState
from storage.store import SubmitGateStore

OUT_OF_CREDITS_STATUS = _("paused: the video service account is out of credits")
BUSY_STATUS = _("waiting: the video service is busy")
DEFAULT_RATE_LIMIT_WAIT = 10.0

HELD_RATE_LIMITED = _(
    "The video service is busy right now, so your video is waiting in the queue. It starts "
    "automatically; your credits are held until then (and returned if it cannot start)."
)


def held_out_of_credits(max_wait_seconds: float) -> Message:
    """What a requester whose job waits for a 402 pause is told, privately."""
    return _(
        "The video service account is out of credits, so videos are paused and yours is "
        "waiting in the queue. The bot's operator has been told. It starts automatically "
        "once the account is topped up; if it cannot start within {wait} your credits are "
        "returned.",
        wait=wait_text(max_wait_seconds),
    )


def wait_text(seconds: float) -> Message:
    """'30 minutes', '1 minute', '45 seconds': a wait limit in words (any locale)."""
    if seconds >= 60:
        minutes = round(seconds / 60) if seconds >= 120 else 1
        return ngettext("{count} minute", "{count} minutes", minutes, count=Number(minutes))
    whole = max(1, round(seconds))
    return ngettext("{count} second", "{count} seconds", whole, count=Number(whole))


class SubmitGate:
    """This process's view of the shared submit gate.

    Several processes: the truth is the database row; each process keeps the state it
    last read (`state`) only to render cards and `/config show` between reads, and reads
    it again (`refresh`) before every decision to submit (the acknowledgement path's
    start, each dispatch round). Changes are single statements on the row
    (`SubmitGateStore`), so two processes answering at once never lose each other's
    change, and while paused only the process that claims the probe (`claim_probe`)
    sends one.
    """

    def __init__(
        self,
        store: SubmitGateStore,
        first_backoff: float,
        max_backoff: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._first = first_backoff
        self._max = max(max_backoff, first_backoff)
        self._clock = clock
        self.state = GateState()

    async def refresh(self) -> GateState:
        """Read the shared gate (every process's 402s and 429s) and keep it."""
        self.state = await self._store.read()
        return self.state

    @property
    def out_of_credits(self) -> bool:
        """Paused for a 402 (as last read)."""
        return self.state.out_of_credits

    def is_open(self) -> bool:
        """True when a submit may be tried now (a paused gate opens for one probe)."""
        until = self.state.not_before
        return until is None or self._clock() >= until

    def seconds_until_open(self) -> float:
        """How long until a submit may be tried (0 when open)."""
        until = self.state.not_before
        if until is None:
            return 0.0
        return max(0.0, (until - self._clock()).total_seconds())

    async def claim_probe(self) -> bool:
        """While paused for a 402: take the one probe due now, for every process (its
        lease is the first backoff, so a probe that never answers is retried)."""
        return await self._store.claim_probe(self._first)

    async def on_out_of_credits(self) -> float:
        """Pause (or stay paused) after a 402; return the seconds until the next probe."""
        self.state = await self._store.pause_out_of_credits(self._first, self._max)
        return self.seconds_until_open()

    async def on_rate_limited(self, retry_after: float | None) -> float:
        """Hold submission after a 429; return the seconds to wait."""
        wait = retry_after if retry_after and retry_after > 0 else DEFAULT_RATE_LIMIT_WAIT
        self.state = await self._store.hold(wait)
        return wait

    async def on_accepted(self) -> bool:
        """The API took a job: lift any pause. Returns True if a 402 pause was lifted.

        Writes only when the gate was last seen closed, so an ordinary accepted submit
        costs nothing here.
        """
        if not self.state.out_of_credits and self.state.not_before is None:
            return False
        lifted = await self._store.open()
        self.state = GateState()
        return lifted

    @property
    def status(self) -> str | None:
        """Why submission is held, for cards and `/config show`; ``None`` when running."""
        if self.state.out_of_credits:
            return OUT_OF_CREDITS_STATUS
        if not self.is_open():
            return BUSY_STATUS
        return None

    def held_message(self, max_wait_seconds: float) -> str:
        """What a requester whose job waits for the gate is told, privately."""
        if self.state.out_of_credits:
            return held_out_of_credits(max_wait_seconds)
        return HELD_RATE_LIMITED
