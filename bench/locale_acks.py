"""The cost of speaking the member's language: the /video acknowledgement with a
non-English locale against English, in the same run on the same bot (issue 16).

One real bot (`bot.py`) takes bursts of `plan.burst` simultaneous /video commands whose
members' Discord clients, and the server, are in English or in `locale`, in the order
A B B A (repeated), so drifting machine load hits both alike. Between bursts every video is
delivered, so each burst starts from an idle bot, and one unmeasured burst in each
language warms the bot up first. The figure is the p99 of the
acknowledgements of all the localised bursts against that of all the English ones;
whatever text the acknowledgement path says (its refusals, the first status card) is
said in that locale, so the figure holds as more of the path is translated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.draws import percentile
from bench.figures import Figure, at_most
from bench.harness import Stage, new_tasks, sandbox_config, wait_acks, wait_delivered
from bench.scenarios import ACK_WAIT_SECONDS, Plan, real_bot
from core.i18n import SOURCE_LOCALE
from happyhorse.sandbox import SandboxServer

LOCALE = "de"
"""The non-English locale measured (a complete catalog, Latin script, plural rules)."""
LOCALE_LIMIT = 1.05
"""The target: the localised p99 at most this times the English one."""
MS = 1000.0


@dataclass
class LocaleAcks:
    """The acknowledgement delays of the English and the localised bursts."""

    locale: str = LOCALE
    english: list[float] = field(default_factory=list)
    localised: list[float] = field(default_factory=list)
    bursts: int = 0
    missing: int = 0
    errors: list[str] = field(default_factory=list)


def burst_order(rounds: int, locale: str) -> list[str]:
    """A B B A per round: English, the locale, the locale, English (drift cancels)."""
    return [SOURCE_LOCALE, locale, locale, SOURCE_LOCALE] * rounds


async def locale_bursts(
    stage: Stage, workdir: Path, plan: Plan, out: LocaleAcks, rounds: int = 1
) -> None:
    """Bursts of `plan.burst` /video in English and in `out.locale`, on one bot."""
    async with (
        SandboxServer(sandbox_config(plan.status_limit, plan.scale)) as sandbox,
        real_bot(stage, sandbox, workdir, "locale", plan, rate=plan.status_rate) as (_, database),
    ):
        try:
            # One unmeasured burst in each first: the first burst on a fresh bot pays its
            # warm-up (connections, caches), which must not land on either side.
            warm = [SOURCE_LOCALE, out.locale]
            for number, locale in enumerate([*warm, *burst_order(rounds, out.locale)]):
                # The server's Discord language too: the first status card is public.
                stage.guild.preferred_locale = locale
                before = len(sandbox.state.tasks)
                sandbox.state.completion_times.extend([plan.quick_completion] * plan.burst)
                records = await stage.order(plan.burst, locale=locale)
                acks = await wait_acks(records, ACK_WAIT_SECONDS)
                if number >= len(warm):
                    (out.english if locale == SOURCE_LOCALE else out.localised).extend(acks)
                    out.bursts += 1
                timeout = plan.delivery_timeout(plan.burst, plan.status_rate)
                tasks = await new_tasks(sandbox, before, plan.burst, timeout)
                delivered = await wait_delivered(database, [t.task_id for t in tasks], timeout)
                out.missing += plan.burst - len(delivered)
        finally:
            stage.guild.preferred_locale = SOURCE_LOCALE
    if out.missing:
        out.errors.append(f"locale bursts: {out.missing} videos were not delivered")


def _p(values: list[float], q: float) -> float:
    return percentile(values, q) if values else math.inf


def locale_figures(plan: Plan, run: LocaleAcks) -> list[Figure]:
    """The localised acknowledgement p99 against the English one, same run."""
    english = _p(run.english, 99) * MS
    return [
        at_most(
            f"ack latency p99, {plan.burst} simultaneous /video in {run.locale} vs English",
            _p(run.localised, 99) * MS,
            "ms",
            baseline=english if math.isfinite(english) else None,
            limit=LOCALE_LIMIT,
            by_ratio=True,
            target=f"<= {LOCALE_LIMIT:g}x English, same run",
            note=(
                f"{run.bursts} measured bursts (A B B A) after one warm-up in each; member and "
                f"server in {run.locale}; "
                "all videos delivered between bursts"
            ),
            detail={
                "locale": run.locale,
                "acks_each": len(run.localised),
                "p50_ms": _p(run.localised, 50) * MS,
                "english_p50_ms": _p(run.english, 50) * MS,
                "max_ms": max(run.localised, default=math.inf) * MS,
                "english_max_ms": max(run.english, default=math.inf) * MS,
            },
        )
    ]
