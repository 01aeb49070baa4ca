"""Every statement that runs on a timer or on the acknowledgement path seeks; none scans.

The bot runs its scheduler, housekeeping, claims, heartbeats, dispatch, notices and
retention every few seconds in every process, and admits and charges every command
before acknowledging it. Each of those statements must cost the same with a month of
history as with none. So, on a store holding ``SETTLED`` delivered and refunded jobs
(most of them in the guild and for the member the live jobs belong to) and one live job
in every state, this test calls the store methods those loops call, through a
``RecordingDatabase`` that notes each statement the method runs (its SQL is never copied
here: a changed method is checked as it is), then checks each statement twice:

* its plan (SQLite: ``EXPLAIN QUERY PLAN``; PostgreSQL: ``EXPLAIN`` after ``ANALYZE``)
  has no full scan of a table that grows with the history (``SCAN jobs``, ``Seq Scan``);
* the work it does, re-run in a transaction that is rolled back, stays under a budget far
  below the member's own history: SQLite's virtual-machine steps (counted by a progress
  handler), PostgreSQL's rows read from those tables (``EXPLAIN ANALYZE``). A plan can
  name an index and still walk every row behind it (the guild's whole history for its
  highest queue round, every erased row for retention); the budget catches that.

A new public store method must be listed here, as checked or as not on a timer, so
nothing new runs every few seconds unchecked.
"""

from __future__ import annotations

import inspect
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage import JobState, SQLStore
from storage.models import Claimant, MemberAdmission, NewJob
from storage.postgres.database import translate
from storage.sql.claims import SQLJobClaims
from storage.sql.credits import SQLCreditStore
from storage.sql.guilds import SQLGuildSettingsStore
from storage.sql.jobs import SQLJobStore
from storage.sql.processes import SQLProcessStore
from tests.storage.conftest import DEFAULT_CREDITS
from tests.storage.helpers import (
    GUILD,
    OTHER_GUILD,
    OTHER_USER,
    USER,
    FakeClock,
    job_in_state,
    new_job,
)
from tests.storage.history import seed_settled
from tests.storage.recording import RecordingDatabase, Statement

SETTLED = 20_000
"""Settled jobs in the store: 10,000 in the live jobs' guild, 2,500 of the live member's."""

GROWING_TABLES = frozenset({"jobs", "completion_times"})
"""Tables that grow with every job; every other one holds a row per guild, member, role,
live process or moderator action."""

SQLITE_STEP_BUDGET = 5_000
"""Most SQLite VM steps one statement may take: with one step per row the member's own
2,500 settled jobs already cost half of it, and a walk reads each row in several."""

POSTGRES_ROW_BUDGET = 250
"""Most rows of a growing table one statement may read on PostgreSQL (a tenth of the
member's own history); the live jobs are about twenty."""

ME = Claimant(process_id="query-plans:1:me")

START_PLUS = FakeClock().now
"""The store's "now" (the fake clock does not move in these tests)."""


@dataclass(frozen=True)
class Call:
    """One store method call, labelled with the loop that makes it."""

    label: str
    run: Callable[[SQLStore], Awaitable[object]]


def _admit(store: SQLStore) -> Awaitable[object]:
    def decide(admission: MemberAdmission) -> NewJob:
        return new_job(queued=True, queue_round=admission.rounds.highest or 0)

    return store.credits.admit_and_reserve(GUILD, USER, [1, 2], decide)


def _calls(jobs: dict[JobState, int], spare: dict[str, int]) -> list[Call]:
    """The calls the timed loops and the acknowledgement make, on the seeded live jobs."""
    now = START_PLUS
    calls = [
        # The acknowledgement: admission and charge, the balance shown, the card.
        Call("ack: credits.admit_and_reserve", _admit),
        Call("ack: credits.admission", lambda s: s.credits.admission(GUILD, USER)),
        Call("ack: credits.reserve", lambda s: s.credits.reserve(new_job(user_id=OTHER_USER))),
        Call("ack: credits.balance", lambda s: s.credits.balance(GUILD, USER, [1, 2])),
        Call("ack: guilds.get", lambda s: s.guilds.get(GUILD)),
        Call(
            "ack: guilds.remember_discord_locale",
            lambda s: s.guilds.remember_discord_locale(GUILD, "fr"),
        ),
        Call(
            "ack: jobs.set_progress_message",
            lambda s: s.jobs.set_progress_message(jobs[JobState.QUEUED], 42),
        ),
        Call(
            "ack: jobs.set_upload_limit",
            lambda s: s.jobs.set_upload_limit(jobs[JobState.QUEUED], 8 << 20),
        ),
        # Dispatch.
        Call("dispatch: jobs.queued_jobs", lambda s: s.jobs.queued_jobs()),
        Call("dispatch: jobs.queued_jobs(guild)", lambda s: s.jobs.queued_jobs(GUILD)),
        Call("dispatch: jobs.running_counts", lambda s: s.jobs.running_counts()),
        Call("dispatch: jobs.running_counts(guild)", lambda s: s.jobs.running_counts(GUILD)),
        Call(
            "dispatch: jobs.claim_queued",
            lambda s: s.jobs.claim_queued(
                spare["queued"],
                member_running=2,
                server_running=10,
                claimant=ME,
                lease_seconds=30,
                guild_id=GUILD,
            ),
        ),
        Call(
            # Refused (the member already runs a job), so the job stays queued and the
            # re-run below counts the member's running jobs again.
            "dispatch: jobs.claim_queued (guild looked up, member full)",
            lambda s: s.jobs.claim_queued(spare["queued_2"], member_running=1),
        ),
        Call(
            "dispatch: jobs.waiting_members",
            lambda s: s.jobs.waiting_members(member_running=2, server_running=10),
        ),
        Call(
            "dispatch: jobs.waiting_members(guild)",
            lambda s: s.jobs.waiting_members(member_running=2, server_running=10, guild_id=GUILD),
        ),
        Call(
            "dispatch: jobs.waiting_members(member)",
            lambda s: s.jobs.waiting_members(
                member_running=2, server_running=10, guild_id=GUILD, user_id=USER
            ),
        ),
        Call(
            "dispatch: jobs.member_queues(first, fair_limit)",
            lambda s: s.jobs.member_queues(
                [(GUILD, USER), (GUILD, OTHER_USER)], first=[1, 2], fair_limit=2
            ),
        ),
        Call(
            "dispatch: jobs.member_queues",
            lambda s: s.jobs.member_queues([(GUILD, USER), (GUILD, OTHER_USER)]),
        ),
        Call(
            "dispatch: jobs.expire_queued",
            lambda s: s.jobs.expire_queued(START_PLUS - timedelta(hours=1), "waited too long"),
        ),
        Call(
            "dispatch: jobs.hold_reservation",
            lambda s: s.jobs.hold_reservation(spare["queued"], ME, 30),
        ),
        Call("dispatch: jobs.requeue", lambda s: s.jobs.requeue(spare["queued"], "429")),
        Call("ack: jobs.release_hold", lambda s: s.jobs.release_hold(spare["queued"], ME)),
        Call(
            "dispatch: jobs.mark_submitted",
            lambda s: s.jobs.mark_submitted(jobs[JobState.RESERVED], "task", now),
        ),
        Call("dispatch: jobs.cancel_queued", lambda s: s.jobs.cancel_queued(spare["queued"], 1)),
        Call(
            "dispatch: jobs.fail_and_refund",
            lambda s: s.jobs.fail_and_refund(
                spare["queued_2"], "waited too long", expected=JobState.QUEUED
            ),
        ),
        # The poll scheduler.
        Call("scheduler: jobs.poll_candidates", lambda s: s.jobs.poll_candidates(ME, now)),
        Call(
            "scheduler: jobs.claim_polls",
            lambda s: s.jobs.claim_polls([jobs[JobState.SUBMITTED]], ME, 30, now),
        ),
        Call("scheduler: jobs.next_free_poll_at", lambda s: s.jobs.next_free_poll_at(ME)),
        Call("scheduler: jobs.get_job", lambda s: s.jobs.get_job(jobs[JobState.SUBMITTED])),
        Call(
            "scheduler: jobs.mark_pending",
            lambda s: s.jobs.mark_pending(jobs[JobState.SUBMITTED], now),
        ),
        Call(
            "scheduler: jobs.schedule_poll",
            lambda s: s.jobs.schedule_poll(jobs[JobState.SUBMITTED], now),
        ),
        Call(
            "scheduler: jobs.record_error", lambda s: s.jobs.record_error(spare["submitted"], "x")
        ),
        Call(
            "scheduler: jobs.mark_completed",
            lambda s: s.jobs.mark_completed(spare["submitted"], "https://cdn.example/v.mp4"),
        ),
        Call(
            "scheduler: jobs.mark_expired",
            lambda s: s.jobs.mark_expired(jobs[JobState.SUBMITTED], "deadline"),
        ),
        Call("scheduler: jobs.refund", lambda s: s.jobs.refund(jobs[JobState.SUBMITTED])),
        Call(
            "scheduler: jobs.mark_failed",
            lambda s: s.jobs.mark_failed(spare["reserved"], "x", expected=JobState.RESERVED),
        ),
        # Housekeeping: recovery, notices, deliveries.
        Call("housekeeping: jobs.end_stale_leases", lambda s: s.jobs.end_stale_leases(ME)),
        Call("housekeeping: jobs.stale_reserved", lambda s: s.jobs.stale_reserved(0, ME)),
        Call(
            "housekeeping: jobs.refund_stale_reserved",
            lambda s: s.jobs.refund_stale_reserved(jobs[JobState.RESERVED], "stale", ME),
        ),
        Call("housekeeping: jobs.resumable_jobs", lambda s: s.jobs.resumable_jobs()),
        Call(
            "notices: jobs.claim_notices",
            lambda s: s.jobs.claim_notices(ME, 86_400, 30),
        ),
        Call(
            "notices: jobs.claim_notice",
            lambda s: s.jobs.claim_notice(jobs[JobState.REFUNDED], ME, 30),
        ),
        Call(
            "notices: jobs.mark_notified", lambda s: s.jobs.mark_notified(jobs[JobState.REFUNDED])
        ),
        Call("deliveries: jobs.deliverable_jobs", lambda s: s.jobs.deliverable_jobs()),
        Call(
            "deliveries: jobs.claim_delivery",
            lambda s: s.jobs.claim_delivery(jobs[JobState.COMPLETED], 60, ME),
        ),
        Call(
            "deliveries: jobs.end_delivery",
            lambda s: s.jobs.end_delivery(jobs[JobState.COMPLETED], ME),
        ),
        Call(
            "deliveries: jobs.release_delivery",
            lambda s: s.jobs.release_delivery(jobs[JobState.COMPLETED], ME),
        ),
        Call(
            "deliveries: jobs.mark_delivered",
            lambda s: s.jobs.mark_delivered(jobs[JobState.COMPLETED], 7, ME),
        ),
        # Heartbeats, metrics, retention.
        Call("heartbeat: processes.beat", lambda s: s.processes.beat(ME.process_id)),
        Call("heartbeat: processes.all", lambda s: s.processes.all()),
        Call("heartbeat: processes.live", lambda s: s.processes.live(60)),
        Call("heartbeat: processes.forget", lambda s: s.processes.forget("gone:1:x")),
        Call("heartbeat: processes.forget_silent", lambda s: s.processes.forget_silent(600)),
        Call("metrics: jobs.backlog", lambda s: s.jobs.backlog()),
        Call(
            "retention: jobs.erase_settled_before",
            lambda s: s.jobs.erase_settled_before(START_PLUS - timedelta(days=30)),
        ),
    ]
    return calls


NOT_ON_A_TIMER = frozenset(
    {
        # Moderator and member commands, answered after the acknowledgement.
        "jobs.completion_times",  # once, at start-up
        "jobs.unnotified_refunds",
        "jobs.due_jobs",
        "jobs.last_request_at",
        "jobs.recent_jobs",
        "jobs.usage_summary",
        "jobs.mark_message_deleted",
        "jobs.moderator_refund",
        "jobs.claim_redelivery",
        "jobs.record_redelivery",
        "jobs.guild_stats",
        "credits.set_user_allowance",
        "credits.set_guild_default",
        "credits.reset_usage",
        "credits.set_role_allowance",
        "credits.role_allowances",
        "credits.list_audit",
        "guilds.set_log_channel",
        "guilds.set_language",
        "guilds.set_limits",
        "guilds.add_allowed_channel",
        "guilds.remove_allowed_channel",
        "guilds.add_blocked_word",
        "guilds.remove_blocked_word",
        "guilds.clear",
        "processes.now",  # once, at registration (it reads no table)
    }
)
"""Public store methods that run only on a command or once, never every few seconds."""


def _public_methods() -> set[str]:
    found: set[str] = set()
    for prefix, classes in (
        ("jobs", (SQLJobStore, SQLJobClaims)),
        ("credits", (SQLCreditStore,)),
        ("guilds", (SQLGuildSettingsStore,)),
        ("processes", (SQLProcessStore,)),
    ):
        for cls in classes:
            for name, member in vars(cls).items():
                if not name.startswith("_") and inspect.iscoroutinefunction(member):
                    found.add(f"{prefix}.{name}")
    return found


def _method(label: str) -> str:
    return label.split(": ", 1)[1].split(" ")[0].split("(")[0]


def test_every_store_method_is_checked_or_named_as_not_on_a_timer() -> None:
    """A new store method must be added to the plan check or to ``NOT_ON_A_TIMER``."""
    checked = {_method(call.label) for call in _calls({}, {})}
    assert _public_methods() - checked - NOT_ON_A_TIMER == set()
    assert checked & NOT_ON_A_TIMER == set()


# -- the seeded store ------------------------------------------------------------------


async def _seed(store: SQLStore, clock: FakeClock) -> tuple[dict[JobState, int], dict[str, int]]:
    """The history, one live job in every state, spare ones to change, a live process."""
    # Two guilds of four members each; the history ends two days ago, so today's
    # allowance is free for the live jobs.
    await seed_settled(
        store.database,
        SETTLED,
        now=clock() - timedelta(days=2),
        guilds=2,
        members=4,
        first_guild=GUILD,
        first_user=USER,
    )
    await store.credits.set_user_allowance(GUILD, USER, 1000, 1)
    jobs = {state: (await job_in_state(store, state)).id for state in JobState}
    spare = {
        "queued": (await job_in_state(store, JobState.QUEUED)).id,
        "queued_2": (await job_in_state(store, JobState.QUEUED)).id,
        "submitted": (await job_in_state(store, JobState.SUBMITTED)).id,
        "reserved": (await job_in_state(store, JobState.RESERVED)).id,
    }
    await job_in_state(store, JobState.SUBMITTED, guild_id=OTHER_GUILD)
    await job_in_state(store, JobState.REFUNDED, guild_id=OTHER_GUILD)
    await store.processes.beat(ME.process_id)
    if store.database.engine == "postgres":
        await store.database.execute("ANALYZE")
    return jobs, spare


async def _record(store: SQLStore, clock: FakeClock) -> list[Statement]:
    jobs, spare = await _seed(store, clock)
    recorder = RecordingDatabase(store.database)
    recording = SQLStore(recorder, default_daily_credits=DEFAULT_CREDITS, clock=clock)
    for call in _calls(jobs, spare):
        recorder.label = call.label
        before = len(recorder.statements)
        await call.run(recording)
        assert len(recorder.statements) > before, f"{call.label} ran no statement"
    return recorder.statements


# -- SQLite ----------------------------------------------------------------------------

_SCAN = re.compile(r"^SCAN (\w+)")
_ALIAS = re.compile(r"\b(\w+)\s+AS\s+(\w+)", re.IGNORECASE)


def _sqlite_findings(path: Path, statements: list[Statement]) -> list[str]:
    conn = sqlite3.connect(path, isolation_level=None)
    findings: list[str] = []
    try:
        for statement in statements:
            aliases = {
                alias: table
                for table, alias in _ALIAS.findall(statement.sql)
                if table in GROWING_TABLES
            }
            plan = [
                row[3]
                for row in conn.execute("EXPLAIN QUERY PLAN " + statement.sql, statement.params)
            ]
            for line in plan:
                match = _SCAN.match(line)
                if match and aliases.get(match.group(1), match.group(1)) in GROWING_TABLES:
                    findings.append(f"{statement.label}: {line} in {_short(statement.sql)}")
            steps = _sqlite_steps(conn, statement)
            if steps > SQLITE_STEP_BUDGET:
                findings.append(
                    f"{statement.label}: {steps} VM steps (budget {SQLITE_STEP_BUDGET}) "
                    f"with plan {plan} in {_short(statement.sql)}"
                )
    finally:
        conn.close()
    return findings


def _sqlite_steps(conn: sqlite3.Connection, statement: Statement) -> int:
    """VM steps ``statement`` takes, run in a transaction that is rolled back."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 10
        return 0

    conn.execute("BEGIN")
    conn.set_progress_handler(count, 10)
    try:
        conn.execute(statement.sql, statement.params).fetchall()
    except sqlite3.IntegrityError:
        pass  # a replayed INSERT meets its own row's unique nonce after its checks ran
    finally:
        conn.set_progress_handler(None, 0)
        conn.execute("ROLLBACK")
    return steps


# -- PostgreSQL -----------------------------------------------------------------------


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _postgres_findings(url: str, statements: list[Statement]) -> list[str]:
    conn = await asyncpg.connect(url)
    findings: list[str] = []
    try:
        for statement in statements:
            query, args = translate(statement.sql, statement.params)
            analysed = True
            transaction = conn.transaction()
            await transaction.start()
            try:
                rows = await conn.fetch("EXPLAIN (ANALYZE, FORMAT JSON) " + query, *args)
            except asyncpg.UniqueViolationError:
                # A replayed INSERT meets its own row's unique nonce: plan only.
                await transaction.rollback()
                analysed = False
                rows = await conn.fetch("EXPLAIN (FORMAT JSON) " + query, *args)
            else:
                await transaction.rollback()
            plan = json.loads(rows[0][0])[0]["Plan"]
            read = 0
            for node in _nodes(plan):
                if node.get("Relation Name") not in GROWING_TABLES:
                    continue
                if node["Node Type"] == "Seq Scan":
                    findings.append(
                        f"{statement.label}: Seq Scan on {node['Relation Name']} "
                        f"in {_short(statement.sql)}"
                    )
                if analysed:
                    loops = node.get("Actual Loops", 1)
                    read += loops * (
                        node.get("Actual Rows", 0)
                        + node.get("Rows Removed by Filter", 0)
                        + node.get("Rows Removed by Index Recheck", 0)
                    )
            if read > POSTGRES_ROW_BUDGET:
                findings.append(
                    f"{statement.label}: read {read} rows (budget {POSTGRES_ROW_BUDGET}) "
                    f"in {_short(statement.sql)}"
                )
    finally:
        await conn.close()
    return findings


def _short(sql: str) -> str:
    return " ".join(sql.split())[:160]


# -- the test --------------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_timer_and_acknowledgement_statements_use_an_index(
    store: SQLStore, clock: FakeClock, db_path: str | Path, engine: str
) -> None:
    """No statement a loop or the acknowledgement runs scans or walks the history."""
    statements = await _record(store, clock)
    if engine == "sqlite":
        findings = _sqlite_findings(Path(db_path), statements)
    else:
        findings = await _postgres_findings(str(db_path), statements)
    assert findings == [], "\n".join(findings)


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_sqlite_reads_do_not_wait_for_another_processes_write_lock(
    store: SQLStore, db_path: Path
) -> None:
    """The loops' reads run outside the group commit's ``BEGIN IMMEDIATE``.

    Another process (here a second connection) holds SQLite's write lock; the reads the
    timed loops make every few seconds must still answer at once (in WAL mode readers
    never wait for a writer) instead of queueing behind it for the busy timeout and
    failing with "database is locked". And a read of ours never holds the write lock
    that the other process's writes need.
    """
    job = await job_in_state(store, JobState.SUBMITTED)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        assert (await store.jobs.get_job(job.id)) == job
        due = await store.jobs.poll_candidates(ME, job.next_poll_at)
        assert [j.id for j in due] == [job.id]
        assert await store.jobs.queued_jobs() == []
        assert await store.jobs.deliverable_jobs() == []
        assert (await store.credits.balance(GUILD, USER)).used == job.cost
        other.execute("ROLLBACK")
    finally:
        other.close()
