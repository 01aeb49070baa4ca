"""The queue: admission, the 402/429 gate, dispatch, cancels and the cards' estimates.

One module per concern:

- `core.queue.admission` — the acknowledgement path's checks and charge (`Admission`);
- `core.queue.gate` — the 402 pause and 429 hold, shared in the database (`SubmitGate`);
- `core.queue.dispatch` — starting queued jobs fairly, expiring old ones (`Dispatcher`);
- `core.queue.cancel` — cancelling a queued job (`Cancels`);
- `core.queue.eta` — positions and estimates for status cards (`QueueEstimates`).

`QueueService` wires them together for the cogs. Everything here is Discord-free: the
cogs call `QueueService` and render what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from core.eta import CompletionEstimator, LearnedEstimator
from core.jobs import JobDraft, JobService
from core.limits import Limits
from core.queue.admission import ACCEPT_HOLD_SECONDS, Admission
from core.queue.cancel import CancelEvent, CancelListener, CancelOutcome, Cancels
from core.queue.dispatch import Dispatcher, DispatchReport, StartKind, StartOutcome
from core.queue.eta import CardInfo, QueueEstimates
from core.queue.gate import BUSY_STATUS, OUT_OF_CREDITS_STATUS, SubmitGate, wait_text
from core.settings import BotSettings
from storage.models import Job
from storage.store import Store

__all__ = [
    "ACCEPT_HOLD_SECONDS",
    "BUSY_STATUS",
    "OUT_OF_CREDITS_STATUS",
    "CancelEvent",
    "CancelListener",
    "CancelOutcome",
    "CardInfo",
    "DispatchReport",
    "QueueService",
    "StartKind",
    "StartOutcome",
    "SubmitGate",
    "wait_text",
]


class QueueService:
    """Admits requests, starts queued jobs fairly within the limits, and expires old ones.

    Several processes: nothing that decides is kept here; the queue, the running counts,
    the holds and the gate are in the database. What each part keeps per process is said
    in its docstring (`Dispatcher`, `SubmitGate`, `Cancels`).
    """

    def __init__(
        self,
        store: Store,
        jobs: JobService,
        settings: BotSettings,
        *,
        estimator: CompletionEstimator | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.settings = settings
        self.gate = SubmitGate(
            store.gate,
            settings.queue_pause_backoff_seconds,
            settings.queue_pause_max_backoff_seconds,
            clock,
        )
        self.estimates = QueueEstimates(
            store,
            self.gate,
            estimator or LearnedEstimator(jobs.completion),
            self.limits,
            clock,
        )
        self.admission = Admission(store, jobs, settings, self._starts_at, clock)
        self.dispatcher = Dispatcher(store, jobs, settings, self.gate, clock)
        self.cancels = Cancels(store, self._cancelled)

    @property
    def estimator(self) -> CompletionEstimator:
        """Where the cards' completion estimates come from."""
        return self.estimates.estimator

    async def limits(self, guild_id: int) -> Limits:
        """The guild's effective limits."""
        return Limits.resolve((await self.store.guilds.get(guild_id)).limits)

    # -- admission -------------------------------------------------------------------

    async def accept(self, draft: JobDraft) -> Job:
        """Admit and reserve a request (see `Admission.accept`); raises `Refusal`."""
        job = await self.admission.accept(draft)
        self.dispatcher.watch(job.guild_id)
        return job

    async def admit(self, draft: JobDraft) -> None:
        """The admission rules as a free check (see `Admission.admit`)."""
        await self.admission.admit(draft)

    async def admit_member(self, guild_id: int, user_id: int) -> None:
        """`admit` for flows that know only who is asking (the Animate image menu)."""
        await self.admission.admit_member(guild_id, user_id)

    async def _starts_at(self, job: Job) -> datetime | None:
        return (await self.estimates.card_info(job)).starts_at

    # -- dispatch --------------------------------------------------------------------

    async def start(self, job: Job, *, tell_now: bool = True) -> StartOutcome:
        """Start a just-accepted job if it is its turn (see `Dispatcher.start`)."""
        return await self.dispatcher.start(job, tell_now=tell_now)

    async def dispatch(self) -> DispatchReport:
        """One dispatch round (see `Dispatcher.dispatch`)."""
        return await self.dispatcher.dispatch()

    def wake(self) -> None:
        """Something changed (a job queued or settled, a pause lifted): dispatch soon."""
        self.dispatcher.wake()

    async def wait_for_work(self, seconds: float) -> None:
        """Sleep until `wake` is called or ``seconds`` pass (the periodic safety check)."""
        await self.dispatcher.wait_for_work(seconds)

    def next_check_in(self) -> float:
        """Seconds until the dispatcher should look again without being woken."""
        return self.dispatcher.next_check_in()

    # -- cancelling ------------------------------------------------------------------

    def add_cancel_listener(self, listener: CancelListener) -> None:
        """Call ``listener`` after each cancel (see `Cancels.add_listener`)."""
        self.cancels.add_listener(listener)

    async def cancel(
        self, job_id: int, guild_id: int, by_user_id: int, *, moderator: bool
    ) -> tuple[CancelOutcome, Job | None]:
        """Cancel a queued job for its requester or a moderator, returning its credits once."""
        return await self.cancels.cancel(job_id, guild_id, by_user_id, moderator=moderator)

    def _cancelled(self, job: Job) -> None:
        self.dispatcher.watch(job.guild_id)
        self.dispatcher.wake()

    # -- what cards show -------------------------------------------------------------

    async def card_info(self, job: Job) -> CardInfo:
        """Position, queue length and estimates for one job's card."""
        return await self.estimates.card_info(job)

    async def card_infos(self, jobs: Sequence[Job]) -> dict[int, CardInfo]:
        """`card_info` for many jobs at once."""
        return await self.estimates.card_infos(jobs)

    async def queue_positions(self, guild_id: int) -> dict[int, tuple[int, int]]:
        """Job id -> (position, length) of the guild's queued jobs."""
        return await self.estimates.queue_positions(guild_id)

    async def service_status(self) -> str | None:
        """Why submission is held now (read from the shared gate), for `/config show`."""
        await self.gate.refresh()
        return self.gate.status
