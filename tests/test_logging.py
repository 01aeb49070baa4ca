"""Log lines: the job id rides along, LOG_FORMAT=json, and secrets never get out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

import bot as bot_module
from core.logs import bind_job, job_logging

TOKEN = "MTIzNDU2Nzg5MDEy.discord-token-for-logging-tests"
API_KEY = "hh-live-key-for-logging-tests-0123456789"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, list[str]]]:
    """A logger writing through a JSON `log_handler` into a string; yields its lines."""
    stream = io.StringIO()
    logger = logging.getLogger("test.logs.json")
    logger.handlers[:] = [bot_module.log_handler([TOKEN, API_KEY], "json", stream)]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    lines: list[str] = []
    try:
        yield logger, stream, lines
    finally:
        logger.handlers.clear()


def entries(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_json_lines_carry_time_level_logger_message(logged) -> None:
    """Each record is one JSON object on one line, with the documented fields."""
    logger, stream, _ = logged
    logger.info("two\nlines %s", "here")
    (entry,) = entries(stream)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "test.logs.json"
    assert entry["message"] == "two\nlines here"
    assert str(entry["time"]).endswith("+00:00")
    assert "job_id" not in entry and "exception" not in entry


def test_job_id_is_added_where_a_job_is_handled(logged) -> None:
    """Inside `bind_job` every record carries the job id; outside it, none does."""
    logger, stream, _ = logged
    with bind_job(42):
        logger.warning("polling")
    logger.warning("idle")
    first, second = entries(stream)
    assert first["job_id"] == 42 and first["message"] == "polling"
    assert "job_id" not in second


async def test_parallel_jobs_keep_their_own_ids(logged) -> None:
    """Jobs handled in parallel tasks never log under each other's id."""
    logger, stream, _ = logged
    gate = asyncio.Event()

    async def work(n: int) -> int:
        await gate.wait()
        logger.info("job work %d", n)
        return n

    tasks = [asyncio.ensure_future(job_logging(n, work(n))) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [1, 2, 3]
    for entry in entries(stream):
        assert entry["message"] == f"job work {entry['job_id']}"


def test_json_output_never_holds_the_token_or_the_key(logged) -> None:
    """Secrets in the message, its arguments and the traceback are redacted in JSON too."""
    logger, stream, _ = logged
    logger.warning("token=%s", TOKEN)
    try:
        raise RuntimeError(f"the server echoed {API_KEY}")
    except RuntimeError:
        with bind_job(7):
            logger.exception("submit failed with key %s", API_KEY)
    logger.info("stack", stack_info=True, extra={"note": API_KEY})
    raw = stream.getvalue()
    assert TOKEN not in raw and API_KEY not in raw
    warning, failure, _stack = entries(stream)
    assert warning["message"] == "token=***"
    assert failure["job_id"] == 7
    assert failure["message"] == "submit failed with key ***"
    assert "RuntimeError: the server echoed ***" in str(failure["exception"])


def test_text_lines_tag_the_job_and_keep_the_message() -> None:
    """The text format keeps the message as it was, after a `[job N]` tag."""
    stream = io.StringIO()
    logger = logging.getLogger("test.logs.text")
    logger.handlers[:] = [bot_module.log_handler([TOKEN], "text", stream)]
    logger.propagate = False
    try:
        with bind_job(9):
            logger.warning("Job %s: download failed", 9)
        logger.warning("no job")
    finally:
        logger.handlers.clear()
    tagged, plain = stream.getvalue().splitlines()
    assert tagged.endswith("WARNING  test.logs.text: [job 9] Job 9: download failed")
    assert plain.endswith("WARNING  test.logs.text: no job")
