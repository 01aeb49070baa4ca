"""The queue's order and who may start, without I/O (the submit gate: test_gate.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.fairness import fair_order, next_round, positions, startable
from core.limits import Limits
from core.queue import wait_text
from storage.models import Job, JobState, QueueRounds

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GUILD, OTHER_GUILD = 1, 2
ALICE, BOB, CAROL = 10, 20, 30


def job(job_id: int, user: int, round_: int, *, guild: int = GUILD, at: int | None = None) -> Job:
    """A queued job created `at` seconds after T0 (default: its id)."""
    created = T0 + timedelta(seconds=job_id if at is None else at)
    return Job(
        id=job_id,
        guild_id=guild,
        channel_id=5,
        user_id=user,
        interaction_id=None,
        progress_message_id=None,
        mode="text-to-video",
        prompt="p",
        image_url=None,
        duration=5,
        aspect_ratio="16:9",
        quality="std",
        sound=True,
        cost=1,
        task_id=None,
        state=JobState.QUEUED,
        attempts=0,
        next_poll_at=None,
        delivering_until=None,
        delivery_nonce=f"n{job_id}",
        result_url=None,
        delivered_message_id=None,
        last_error=None,
        created_at=created,
        updated_at=created,
        submitted_at=None,
        completed_at=None,
        delivered_at=None,
        refunded_at=None,
        queue_round=round_,
    )


class Ledger:
    """Jobs arriving one by one, each given its round the way JobService.reserve does."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def arrive(self, user: int, guild: int = GUILD) -> Job:
        mine = [j for j in self.jobs if j.guild_id == guild]
        unfinished = [j for j in mine if j.state in {JobState.QUEUED, JobState.SUBMITTED}]
        rounds = QueueRounds(
            lowest_unfinished=min((j.queue_round or 0 for j in unfinished), default=None),
            highest=max((j.queue_round or 0 for j in mine), default=None),
            member_unfinished=max(
                (j.queue_round or 0 for j in unfinished if j.user_id == user), default=None
            ),
        )
        new = job(len(self.jobs) + 1, user, next_round(rounds), guild=guild)
        self.jobs.append(new)
        return new

    def set_state(self, job_id: int, state: JobState) -> None:
        self.jobs = [replace(j, state=state) if j.id == job_id else j for j in self.jobs]

    def queued(self) -> list[Job]:
        return [j for j in self.jobs if j.state is JobState.QUEUED]


def ids(jobs: list[Job]) -> list[int]:
    return [j.id for j in jobs]


def test_a_later_member_goes_ahead_of_a_members_third_job() -> None:
    """alice asks three times (the first starts), then bob once: bob is next."""
    ledger = Ledger()
    a1 = ledger.arrive(ALICE)
    ledger.set_state(a1.id, JobState.SUBMITTED)
    a2, a3 = ledger.arrive(ALICE), ledger.arrive(ALICE)
    b1 = ledger.arrive(BOB)
    assert ids(fair_order(ledger.queued())) == [b1.id, a2.id, a3.id]


def test_bob_still_beats_alices_third_when_her_second_is_already_running() -> None:
    ledger = Ledger()
    a1, a2, a3 = ledger.arrive(ALICE), ledger.arrive(ALICE), ledger.arrive(ALICE)
    ledger.set_state(a1.id, JobState.DELIVERED)
    ledger.set_state(a2.id, JobState.SUBMITTED)
    b1 = ledger.arrive(BOB)
    assert ids(fair_order(ledger.queued())) == [b1.id, a3.id]


def test_round_robin_across_three_members() -> None:
    ledger = Ledger()
    a = [ledger.arrive(ALICE) for _ in range(3)]
    b = [ledger.arrive(BOB) for _ in range(2)]
    c = ledger.arrive(CAROL)
    order = ids(fair_order(ledger.queued()))
    assert order == [a[0].id, b[0].id, c.id, a[1].id, b[1].id, a[2].id]


def test_an_idle_member_cannot_bank_rounds() -> None:
    """Rounds served long ago give no head start: a returning member joins the current round."""
    ledger = Ledger()
    for _ in range(5):
        done = ledger.arrive(ALICE)
        ledger.set_state(done.id, JobState.DELIVERED)
    b1 = ledger.arrive(BOB)
    b2 = ledger.arrive(BOB)
    a6 = ledger.arrive(ALICE)
    assert ids(fair_order(ledger.queued())) == [b1.id, a6.id, b2.id]


def test_within_a_round_oldest_first_and_ties_by_id() -> None:
    jobs = [job(3, BOB, 1, at=5), job(1, ALICE, 1, at=5), job(2, CAROL, 0, at=9)]
    assert ids(fair_order(jobs)) == [2, 1, 3]


def test_startable_respects_member_and_server_limits_without_blocking_others() -> None:
    ordered = [job(1, ALICE, 0), job(2, ALICE, 1), job(3, BOB, 1), job(4, CAROL, 2)]
    limits = Limits(member_running=1, server_running=3)
    picked = startable(ordered, {(GUILD, ALICE): 0}, lambda _: limits)
    assert ids(picked) == [1, 3, 4]  # alice's second waits for her first, others do not
    # One slot left in the server: only the first eligible job goes.
    busy = {(GUILD, ALICE): 1, (GUILD, BOB): 1}
    assert ids(startable(ordered, busy, lambda _: limits)) == [4]
    assert startable(ordered, {(GUILD, CAROL): 3}, lambda _: limits) == []


def test_zero_means_no_limit_and_limits_are_per_guild() -> None:
    ordered = [job(1, ALICE, 0), job(2, ALICE, 1), job(3, BOB, 0, guild=OTHER_GUILD)]
    limits = {GUILD: Limits(member_running=0, server_running=0), OTHER_GUILD: Limits()}
    running = {(OTHER_GUILD, CAROL): 10}
    assert ids(startable(ordered, running, limits.__getitem__)) == [1, 2]


def test_positions_are_per_guild() -> None:
    ordered = [job(1, ALICE, 0), job(2, BOB, 0, guild=OTHER_GUILD), job(3, BOB, 1)]
    assert positions(ordered) == {1: (1, 2), 2: (1, 1), 3: (2, 2)}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1800, "30 minutes"),
        (60, "1 minute"),
        (1, "1 second"),
        (0.2, "1 second"),
        (45, "45 seconds"),
    ],
)
def test_wait_text(seconds: float, text: str) -> None:
    assert wait_text(seconds) == text
