"""Log records that carry the job they are about, and one JSON object per line on request.

Where a job is handled, `job_logging(job_id, work)` (or `bind_job`) sets a context
variable; `JobIdFilter`, installed on the handler, copies it onto every record emitted in
that context, including records from the API client and discord.py. Each asyncio task has
its own copy of the context, so jobs handled in parallel never see each other's id.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")

CURRENT_JOB: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "happyhorse_job_id", default=None
)

TEXT_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(job_tag)s%(message)s"
TEXT_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@contextlib.contextmanager
def bind_job(job_id: int) -> Iterator[None]:
    """Within the block, log records carry `job_id`."""
    token = CURRENT_JOB.set(job_id)
    try:
        yield
    finally:
        CURRENT_JOB.reset(token)


async def job_logging(job_id: int, work: Awaitable[T]) -> T:
    """Await `work` with its log records carrying `job_id`; return its result."""
    with bind_job(job_id):
        return await work


class JobIdFilter(logging.Filter):
    """Add `job_id` (int or None) and `job_tag` ("[job 42] " or "") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record from the current context; never drops it."""
        job_id = getattr(record, "job_id", None)
        if job_id is None:
            job_id = CURRENT_JOB.get()
        record.job_id = job_id
        record.job_tag = f"[job {job_id}] " if job_id is not None else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record; secrets were already replaced by the handler's filters."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            entry["job_id"] = job_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def text_formatter() -> logging.Formatter:
    """The human-readable format: time, level, logger, then `[job N] ` and the message."""
    return logging.Formatter(TEXT_FORMAT, TEXT_DATE_FORMAT)
