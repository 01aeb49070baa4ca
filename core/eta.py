"""How long jobs take: the estimator protocol and an implementation over the job ledger.

The queue only needs `expected_seconds`; the scheduler's learned completion model can be
plugged in instead of `LedgerEstimator` (anything with the same method will do).
"""

from __future__ import annotations

import statistics
import time
from typing import Protocol

from storage.store import JobStore

MIN_SAMPLES = 5
SAMPLES = 50
CACHE_SECONDS = 30.0


class CompletionEstimator(Protocol):
    """Expected seconds from submitting a job of this kind until the API has its video."""

    def expected_seconds(
        self, mode: str, quality: str, duration: int, sound: bool
    ) -> float | None:
        """``None`` while there is too little history to say."""
        ...


Kind = tuple[str, str, int, bool]


class LedgerEstimator:
    """The median completion time of the latest completed jobs of the same kind.

    ``expected_seconds`` answers from a cache (it is called while rendering cards);
    ``refresh`` re-reads the ledger for the kinds asked about: at most every 30 s for a
    kind with an estimate, every time for one still without (so the first estimate shows
    as soon as the fifth job of its kind completes).
    """

    def __init__(self, jobs: JobStore, *, min_samples: int = MIN_SAMPLES) -> None:
        self._jobs = jobs
        self._min_samples = min_samples
        self._known: dict[Kind, float | None] = {}
        self._read_at: dict[Kind, float] = {}

    def expected_seconds(
        self, mode: str, quality: str, duration: int, sound: bool
    ) -> float | None:
        """The cached median for this kind, or ``None`` (unknown or too few samples)."""
        return self._known.get((mode, quality, duration, sound))

    async def refresh(self, kinds: set[Kind]) -> None:
        """Re-read the history of these kinds if it was not read in the last 30 s."""
        now = time.monotonic()
        for kind in kinds:
            fresh = now - self._read_at.get(kind, -CACHE_SECONDS) < CACHE_SECONDS
            if fresh and self._known.get(kind) is not None:
                continue
            samples = await self._jobs.completion_seconds(*kind, limit=SAMPLES)
            usable = [s for s in samples if s >= 0]
            self._known[kind] = (
                statistics.median(usable) if len(usable) >= self._min_samples else None
            )
            self._read_at[kind] = now
