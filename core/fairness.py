"""The queue's order, free of I/O: rounds, the fair order, and who may start now.

Round-robin across members, oldest first within a member, in the manner of start-time
fair queueing: when a job arrives it gets a *round*, fixed from then on: the round being
served (the lowest round queued or running in its guild, or the highest round so far when
nothing is), or one past its member's latest queued or running job if that is later.
Jobs start by round, then oldest first. So a member who queues three jobs takes three
rounds, and a member who asks later joins the round being served and goes ahead of the
first member's later jobs; and a member cannot bank rounds by having been idle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from core.limits import Limits
from storage.models import Job, QueueRounds, WaitingMember

Member = tuple[int, int]
"""(guild id, user id)"""


def next_round(rounds: QueueRounds) -> int:
    """The round of a member's next job (see the module docstring)."""
    if rounds.lowest_unfinished is not None:
        served = rounds.lowest_unfinished
    else:
        served = rounds.highest if rounds.highest is not None else 0
    if rounds.member_unfinished is None:
        return served
    return max(served, rounds.member_unfinished + 1)


def could_start(member: WaitingMember, most: int) -> int:
    """How many of the member's queued jobs could start now, at most ``most``: no more
    than the free slots under the member's and the server's running limits (0: none).
    ``startable`` can pick none of the member's later jobs, so they need not be read."""
    free = most
    if member.member_limit:
        free = min(free, member.member_limit - member.running)
    if member.server_limit:
        free = min(free, member.server_limit - member.guild_running)
    return max(free, 0)


def fair_order(jobs: Iterable[Job]) -> list[Job]:
    """Queued jobs in the order they should start: by round, then oldest first."""
    return sorted(
        jobs,
        key=lambda job: (
            job.queue_round if job.queue_round is not None else 0,
            job.created_at,
            job.id,
        ),
    )


def startable(
    ordered: Sequence[Job],
    running: Mapping[Member, int],
    limits_of: Callable[[int], Limits],
    guild_running: Mapping[int, int] | None = None,
) -> list[Job]:
    """The jobs to start now, in order: each fits its member's and its server's running
    limits, counting the jobs already running and those picked before it.

    A job whose member is at their limit is skipped, not waited for, so it never holds
    back other members' jobs behind it. ``guild_running`` gives each guild's running
    count when ``running`` does not hold every member (the dispatcher passes only the
    members who may start a job); by default it is summed from ``running``.
    """
    member_running: Counter[Member] = Counter(running)
    server_running: Counter[int] = Counter()
    if guild_running is None:
        for (guild_id, _), count in running.items():
            server_running[guild_id] += count
    else:
        server_running.update(guild_running)
    picked: list[Job] = []
    for job in ordered:
        limits = limits_of(job.guild_id)
        member = (job.guild_id, job.user_id)
        if limits.server_running and server_running[job.guild_id] >= limits.server_running:
            continue
        if limits.member_running and member_running[member] >= limits.member_running:
            continue
        picked.append(job)
        member_running[member] += 1
        server_running[job.guild_id] += 1
    return picked


def positions(ordered: Sequence[Job]) -> dict[int, tuple[int, int]]:
    """Job id -> (position, queue length) within its guild's queue, both 1-based."""
    totals = Counter(job.guild_id for job in ordered)
    seen: Counter[int] = Counter()
    result: dict[int, tuple[int, int]] = {}
    for job in ordered:
        seen[job.guild_id] += 1
        result[job.id] = (seen[job.guild_id], totals[job.guild_id])
    return result
