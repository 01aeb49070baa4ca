"""A member's data: read out, and erased on request, on both engines."""

from __future__ import annotations

from datetime import timedelta

from storage import JobState, SQLStore
from storage.models import ERASED_USER_ID, AuditAction
from tests.storage.helpers import (
    GUILD,
    MODERATOR,
    OTHER_USER,
    USER,
    FakeClock,
    job_in_state,
    reserve,
)


async def stats_totals(store: SQLStore, clock: FakeClock) -> tuple[int, ...]:
    stats = await store.jobs.guild_stats(
        GUILD, clock.now - timedelta(days=30), clock.now + timedelta(days=1)
    )
    return (
        stats.made,
        stats.failed,
        stats.pending,
        stats.refunded,
        stats.credits_spent,
        stats.credits_refunded,
    )


async def test_member_data_reads_jobs_audit_and_allowance(store: SQLStore) -> None:
    """The export's sources: every job, audit entries about them, their own allowance."""
    mine = await job_in_state(store, JobState.DELIVERED, user_id=USER)
    await reserve(store, user_id=OTHER_USER)
    await store.credits.set_user_allowance(GUILD, USER, 25, MODERATOR)
    await store.credits.set_user_allowance(GUILD, OTHER_USER, 5, MODERATOR)
    privacy = store.privacy
    assert [j.id for j in await privacy.member_jobs(GUILD, USER)] == [mine.id]
    audit = await privacy.member_audit(GUILD, USER)
    assert [(a.action, a.target_user_id) for a in audit] == [
        (AuditAction.SET_USER_ALLOWANCE, USER)
    ]
    # A moderator's changes to others are those members' data, not the moderator's.
    assert await privacy.member_audit(GUILD, MODERATOR) == []
    assert await privacy.member_allowance(GUILD, USER) == 25
    assert await privacy.member_allowance(GUILD, 1) is None


async def test_erase_keeps_counts_and_allowance_use_but_nothing_personal(
    store: SQLStore, clock: FakeClock
) -> None:
    """Content and links go; /stats totals and this period's usage stay; rows are nobody's
    or wait for the period's end; the per-member rows go; the erase is audited by counts."""
    old = await job_in_state(store, JobState.DELIVERED, user_id=USER)
    clock.advance(days=2)
    today = await job_in_state(store, JobState.DELIVERED, user_id=USER, duration=10)
    refunded = await job_in_state(store, JobState.REFUNDED, user_id=USER)
    other = await job_in_state(store, JobState.DELIVERED, user_id=OTHER_USER)
    await store.jobs.set_progress_message(today.id, 4242)
    await store.credits.set_user_allowance(GUILD, USER, 25, MODERATOR)
    before_used = (await store.credits.balance(GUILD, USER)).used
    before_stats = await stats_totals(store, clock)

    erased = await store.privacy.erase_member(GUILD, USER, USER)

    assert (erased.jobs_erased, erased.jobs_still_counted, erased.unfinished) == (3, 1, 0)
    assert erased.allowance_removed and erased.audit_entries_anonymised == 1
    assert erased.audit is not None and erased.audit.action is AuditAction.ERASE_MEMBER_DATA
    assert erased.audit.new_value == "3 jobs erased; own allowance removed: yes"
    for job_id in (old.id, today.id, refunded.id):
        job = await store.jobs.get_job(job_id)
        assert job is not None and job.erased_at is not None
        assert job.prompt == "" and job.result_url is None and job.image_url is None
        assert job.progress_message_id is None and job.delivered_message_id is None
        assert job.task_id is None
    by_id = {j.id: j for j in await store.privacy.member_jobs(GUILD, USER)}
    assert list(by_id) == [today.id], "only this period's charged job still names them"
    assert (await store.jobs.get_job(old.id)).user_id == ERASED_USER_ID  # type: ignore[union-attr]
    assert (await store.credits.balance(GUILD, USER)).used == before_used
    assert (await store.credits.balance(GUILD, USER)).override is False
    assert await stats_totals(store, clock) == before_stats
    untouched = await store.jobs.get_job(other.id)
    assert untouched is not None and untouched.prompt == other.prompt
    stats = await store.jobs.guild_stats(GUILD, clock.now - timedelta(days=30), clock.now)
    assert ERASED_USER_ID not in [m.user_id for m in stats.top_members]
    audit = await store.privacy.member_audit(GUILD, USER)
    assert [a.action for a in audit] == [AuditAction.ERASE_MEMBER_DATA]

    # At the end of the credit period the last rows stop naming the member.
    assert await store.privacy.forget_due() == 0
    clock.advance(days=1)
    assert await store.privacy.forget_due() == 1
    assert await store.privacy.member_jobs(GUILD, USER) == []
    assert await stats_totals(store, clock) == before_stats


async def test_erase_leaves_unfinished_jobs_and_reports_them(store: SQLStore) -> None:
    """A job still running is not the store's to erase: it is counted for the caller."""
    running = await job_in_state(store, JobState.SUBMITTED, user_id=USER)
    erased = await store.privacy.erase_member(GUILD, USER, MODERATOR)
    assert (erased.jobs_erased, erased.unfinished) == (0, 1)
    job = await store.jobs.get_job(running.id)
    assert job is not None and job.prompt == running.prompt and job.user_id == USER


async def test_usage_reset_jobs_become_nobodys_at_once(store: SQLStore) -> None:
    """Jobs a moderator's reset already took off the allowance need not wait for the period."""
    before = await job_in_state(store, JobState.DELIVERED, user_id=USER)
    await store.credits.reset_usage(GUILD, USER, MODERATOR)
    after = await job_in_state(store, JobState.DELIVERED, user_id=USER)
    used = (await store.credits.balance(GUILD, USER)).used
    erased = await store.privacy.erase_member(GUILD, USER, USER)
    assert (erased.jobs_still_counted, erased.usage_resets_removed) == (1, 1)
    assert [j.id for j in await store.privacy.member_jobs(GUILD, USER)] == [after.id]
    assert (await store.jobs.get_job(before.id)).user_id == ERASED_USER_ID  # type: ignore[union-attr]
    assert (await store.credits.balance(GUILD, USER)).used == used
