"""How long jobs take, for the queue's estimates: the scheduler's learned completion times.

The queue asks `expected_seconds` while it renders cards; `LearnedEstimator` answers from
`core.completion.CompletionModel`, the same model that places the scheduler's polls, so the
card's "ready" time and the polls come from one history.
"""

from __future__ import annotations

from typing import Protocol

from core.completion import CompletionKey, CompletionModel


class CompletionEstimator(Protocol):
    """Expected seconds from submitting a job of this kind until the API has its video."""

    def expected_seconds(
        self, mode: str, quality: str, duration: int, sound: bool
    ) -> float | None:
        """``None`` while there is too little history to say."""
        ...


class LearnedEstimator:
    """The learned completion model, as a `CompletionEstimator`."""

    def __init__(self, model: CompletionModel) -> None:
        self._model = model

    def expected_seconds(
        self, mode: str, quality: str, duration: int, sound: bool
    ) -> float | None:
        """The model's mean completion time for this kind (pooled while the kind has
        little history); ``None`` until there is enough history."""
        return self._model.expected_seconds(CompletionKey(mode, quality, duration, sound))
