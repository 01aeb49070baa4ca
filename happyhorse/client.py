"""The async HappyHorse API client.

    async with HappyHorseClient(settings) as client:
        task = await client.generate(GenerationRequest(prompt="a horse", quality=Quality.PRO))
        status = await client.status(task.task_id)
        if status.video_url:
            size = await client.download(status.video_url, Path("clip.mp4"), max_bytes=50_000_000)

Retry rule (see `HappyHorseClient` for the full statement): status calls retry transient
failures; a generate call is retried only when the server certainly did not process it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, TypeVar

import aiohttp
from yarl import URL

from happyhorse.dialects import Dialect, api_message, get_dialect, raise_for_envelope
from happyhorse.download_guard import (
    DownloadGuard,
    ForbiddenAddressError,
    GuardedResolver,
    own_addresses,
)
from happyhorse.errors import (
    APIConnectionError,
    APITimeoutError,
    DownloadError,
    DownloadTooLargeError,
    HappyHorseError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    ValidationError,
    error_for_status,
    truncate,
)
from happyhorse.models import GenerationRequest, Task, TaskStatus, is_http_url
from happyhorse.ratelimit import RateLimiter, backoff_delay, parse_retry_after
from happyhorse.settings import USER_AGENT, ClientSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ANSWER_BYTES = 1024 * 1024
DOWNLOAD_CHUNK_BYTES = 64 * 1024
# Redirects one download may follow (aiohttp's own default), each hop checked.
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REDACTED = "***"

Sleep = Callable[[float], Awaitable[None]]
CallObserver = Callable[[str, HappyHorseError | None], None]
"""Told of every API attempt: the operation ("generate", "status" or "download") and the
error it ended with, or None on success. Metrics hook in here; it must not raise."""


class HappyHorseClient:
    """Async client for the HappyHorse video API; use as `async with HappyHorseClient(...)`.

    If no `session` is given, the client creates one on first use and closes it in
    `close()` / `__aexit__`; a session passed in is left open for its owner.

    Retry rule:

    - `status()` retries transient failures — 429, 5xx, timeouts and connection errors —
      up to `settings.max_retries` times, waiting exponential backoff with full jitter
      (uniform in [0, min(retry_cap_seconds, backoff_base_seconds * 2**attempt)]), or the
      server's Retry-After when given, capped at `retry_cap_seconds`.
    - `generate()` is NOT retried once the request may have reached the server, because
      a duplicate task costs real money. It is retried only when the request certainly
      was not processed: the connection could not be opened (aiohttp ClientConnectorError
      — refused, DNS failure, TLS handshake), or the server answered 429 (an
      explicit refusal; its Retry-After is honoured). A 5xx, a timeout, or a connection
      dropped after sending is raised at once.

    Every 429 that carries Retry-After also penalises `status_limiter`, pausing every
    status caller of this client until then, so a flood of 429s slows everything down.
    The API key is sent only to the API (never to download URLs) and is redacted from
    every answer before an exception is built from it.

    Downloads go through a session of their own (created on first use, closed in `close()`
    whoever owns the API session), whose resolver refuses non-public addresses: see
    `happyhorse.download_guard`.
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        observer: CallObserver | None = None,
    ) -> None:
        self.settings = settings
        self._observer = observer
        self.dialect: Dialect = get_dialect(settings.resolved_dialect)
        self.status_limiter = RateLimiter(
            settings.status_rate_per_second, settings.status_burst
        )
        self._session = session
        self._owns_session = session is None
        self._sleep = sleep
        self._rng = rng
        self._base = URL(settings.base_url.rstrip("/"))
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        self._download_session: aiohttp.ClientSession | None = None
        self._download_resolver: aiohttp.abc.AbstractResolver | None = None
        self._download_guard: DownloadGuard | None = None
        self._download_session_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"HappyHorseClient(base_url={self.settings.base_url!r}, "
            f"dialect={self.dialect.name!r})"
        )

    async def __aenter__(self) -> HappyHorseClient:
        self._get_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it, and the download session."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
        if self._download_session is not None:
            await self._download_session.close()
            self._download_session = None
        if self._download_resolver is not None:  # the connector leaves a given one open
            await self._download_resolver.close()
            self._download_resolver = None

    def url(self, path: str) -> URL:
        """The absolute URL of an API `path`, keeping any path prefix of the base URL."""
        return self._base / path.lstrip("/")

    async def generate(self, request: GenerationRequest) -> Task:
        """Submit a generation request and return the new task (id and first state).

        The request is validated first (ValidationError names the bad field; nothing is
        sent). See the class docstring for the retry rule: only a refused connection or a
        429 is retried.
        """
        request.validate(
            max_prompt_length=self.settings.max_prompt_length,
            durations=self.dialect.durations,
            last_frame=self.dialect.supports_last_frame,
        )
        body = self.dialect.generate_body(
            request, image_field=self.settings.image_field, model=self.settings.model
        )
        payload = await self._call(
            "generate", "POST", self.dialect.generate_path, json_body=body, may_duplicate=True
        )
        task = self.dialect.parse_task(payload)
        log.info("generation task %s accepted (%s)", task.task_id, task.state.value)
        return task

    async def status(self, task_id: str) -> TaskStatus:
        """Return the current status of `task_id`; retries transient failures.

        Each attempt waits for a token from `status_limiter` first.
        """
        if not isinstance(task_id, str) or not task_id.strip():
            raise ValidationError("task_id", "must be a non-empty string")
        payload = await self._call(
            "status",
            "GET",
            self.dialect.status_path,
            params=self.dialect.status_params(task_id),
            limiter=self.status_limiter,
        )
        return self.dialect.parse_status(payload, task_id=task_id)

    async def download(
        self, url: str, dest: Path, max_bytes: int, *, deadline_seconds: float | None = None
    ) -> int:
        """Stream `url` into `dest` and return the number of bytes written.

        Refuses early when Content-Length exceeds `max_bytes` and late when more bytes
        arrive; a body shorter than Content-Length or a dropped connection is a
        DownloadError. The data goes to a temporary file beside `dest`, renamed into place
        only on success, so a failure (or cancellation) leaves no partial file. The API key
        is not sent. Each read waits at most `download_read_timeout_seconds`, and with
        `deadline_seconds` the whole download must finish within that time (a server
        trickling bytes just fast enough to beat the read timeout would otherwise hold it
        forever); missing it raises APITimeoutError.
        """
        if deadline_seconds is None:
            return await self._download(url, dest, max_bytes)
        if deadline_seconds <= 0:
            raise DownloadError(f"deadline_seconds must be positive, got {deadline_seconds}")
        try:
            async with asyncio.timeout(deadline_seconds):
                return await self._download(url, dest, max_bytes)
        except TimeoutError:
            # The deadline cancels the attempt inside `_observed`, so it is reported here.
            error = APITimeoutError(f"download did not finish within {deadline_seconds:g} s")
            if self._observer is not None:
                self._observer("download", error)
            raise error from None

    async def _download(self, url: str, dest: Path, max_bytes: int) -> int:
        if not isinstance(url, str) or not is_http_url(url):
            raise DownloadError("download URL must be an http or https URL")
        if max_bytes <= 0:
            raise DownloadError(f"max_bytes must be positive, got {max_bytes}")
        written = await self._download_to(url, Path(dest), max_bytes)
        log.info("downloaded %d bytes to %s", written, dest)
        return written

    async def _download_to(self, url: str, dest: Path, max_bytes: int) -> int:
        try:
            await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
            fd, tmp_name = await asyncio.to_thread(
                tempfile.mkstemp, dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
            )
        except OSError as exc:
            raise DownloadError(f"cannot write to {dest.parent}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                written = await self._observed("download", self._stream_to(url, handle, max_bytes))
            await asyncio.to_thread(os.replace, tmp_name, dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise DownloadError(f"cannot write {dest.name}: {exc.strerror}") from None
        except BaseException:
            # Synchronous on purpose: this also runs on cancellation (and on the overall
            # deadline), when awaiting a worker thread could itself be cancelled and leave
            # the partial file behind.
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        return written

    async def _downloads(self) -> tuple[aiohttp.ClientSession, DownloadGuard]:
        """The download session and its guard, made on first use."""
        async with self._download_session_lock:
            if self._download_session is None or self._download_session.closed:
                if self._download_resolver is None:
                    self._download_resolver = aiohttp.DefaultResolver()
                resolver = self._download_resolver
                try:
                    async with asyncio.timeout(self.settings.timeout_seconds):
                        allowed = await own_addresses(self.settings.base_url, resolver)
                except TimeoutError:
                    allowed = frozenset()
                self._download_guard = guard = DownloadGuard(allowed)
                connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard, resolver))
                self._download_session = aiohttp.ClientSession(connector=connector)
            assert self._download_guard is not None
            return self._download_session, self._download_guard

    @contextlib.asynccontextmanager
    async def _follow(
        self, url: str, headers: Mapping[str, str], limits: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET `url`, following redirects by hand so that the guard checks every hop."""
        session, guard = await self._downloads()
        target = URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            guard.check_url(target)
            async with session.get(
                target, headers=headers, timeout=limits, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status not in REDIRECT_STATUSES or not location:
                    yield resp
                    return
            target = target.join(URL(location))
        raise DownloadError(f"download failed: more than {MAX_REDIRECTS} redirects")

    async def _stream_to(self, url: str, handle: BinaryIO, max_bytes: int) -> int:
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.settings.timeout_seconds,
            sock_read=self.settings.download_read_timeout_seconds,
        )
        # identity: Content-Length then counts the bytes we write, so the checks are exact.
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        written = 0
        try:
            async with self._follow(url, headers, timeout) as resp:
                if resp.status >= 400:
                    snippet = await resp.content.read(4096)
                    text = self._redact(snippet.decode("utf-8", errors="replace"))
                    raise DownloadError(
                        f"download failed: {truncate(text) or resp.reason or 'error'}",
                        status=resp.status,
                    )
                expected = resp.content_length
                if expected is not None and expected > max_bytes:
                    raise DownloadTooLargeError(limit=max_bytes, size=expected)
                async for chunk in resp.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
                    written += len(chunk)
                    if written > max_bytes:
                        raise DownloadTooLargeError(limit=max_bytes, size=written)
                    await asyncio.to_thread(handle.write, chunk)
                if expected is not None and written < expected:
                    raise DownloadError(f"download cut off: got {written} of {expected} bytes")
        except TimeoutError:
            raise DownloadError(f"download timed out after {written} bytes") from None
        except aiohttp.ClientPayloadError as exc:
            raise DownloadError(
                f"download cut off after {written} bytes ({type(exc).__name__})"
            ) from None
        except ForbiddenAddressError as exc:
            raise DownloadError(str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ForbiddenAddressError):
                raise DownloadError(str(exc.os_error)) from None
            raise DownloadError(f"download failed: {self._describe(exc)}") from None
        except aiohttp.ClientError as exc:
            raise DownloadError(f"download failed: {self._describe(exc)}") from None
        await asyncio.to_thread(handle.flush)
        return written

    async def _observed(self, operation: str, attempt: Awaitable[T]) -> T:
        """Await one attempt and tell the observer how it ended."""
        try:
            result = await attempt
        except HappyHorseError as exc:
            if self._observer is not None:
                self._observer(operation, exc)
            raise
        if self._observer is not None:
            self._observer(operation, None)
        return result

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        may_duplicate: bool = False,
    ) -> object:
        """Send one API call with the retry rule; return the decoded JSON answer."""
        attempt = 0
        while True:
            if limiter is not None:
                await limiter.acquire()
            try:
                return await self._observed(
                    operation, self._send_once(method, path, json_body, params)
                )
            except HappyHorseError as exc:
                if isinstance(exc, RateLimitError) and exc.retry_after:
                    self.status_limiter.penalize(
                        min(exc.retry_after, self.settings.retry_cap_seconds)
                    )
                if attempt >= self.settings.max_retries or not _retriable(exc, may_duplicate):
                    raise
                retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
                delay = backoff_delay(
                    attempt,
                    base=self.settings.backoff_base_seconds,
                    cap=self.settings.retry_cap_seconds,
                    retry_after=retry_after,
                    rng=self._rng,
                )
                log.warning(
                    "%s %s failed (%s); retry %d of %d in %.2fs",
                    method,
                    path,
                    type(exc).__name__,
                    attempt + 1,
                    self.settings.max_retries,
                    delay,
                )
                await self._sleep(delay)
                attempt += 1

    async def _send_once(
        self,
        method: str,
        path: str,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> object:
        url = self.url(path)
        try:
            async with self._get_session().request(
                method,
                url,
                json=json_body,
                params=params,
                headers=self._headers(),
                timeout=self._timeout,
            ) as resp:
                raw = await _read_capped(resp, MAX_ANSWER_BYTES)
                return self._decode(resp.status, resp.headers, raw)
        except TimeoutError:
            raise APITimeoutError(
                f"{method} {path} got no answer within {self.settings.timeout_seconds:g}s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise APIConnectionError(
                f"{method} {path}: could not connect ({self._describe(exc)})",
                request_sent=False,
            ) from None
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"{method} {path}: connection failed ({self._describe(exc)})"
            ) from None

    def _decode(self, status: int, headers: Mapping[str, str], raw: str) -> object:
        """Turn one HTTP answer into JSON or the matching exception.

        The body is parsed as received; the API key is then scrubbed from every string in
        the parsed answer and from any error raised, so a server that echoes the key back
        cannot leak it (and a short key can never corrupt the JSON being parsed).
        """
        try:
            return self._scrub_json(self._decode_raw(status, headers, raw))
        except HappyHorseError as exc:
            exc.message = self._redact(exc.message)
            exc.args = tuple(self._redact(a) if isinstance(a, str) else a for a in exc.args)
            raise

    def _decode_raw(self, status: int, headers: Mapping[str, str], text: str) -> object:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        try:
            payload: object = json.loads(text) if text.strip() else None
            decoded = True
        except ValueError:
            payload, decoded = None, False
        if not 200 <= status <= 299:
            message = api_message(payload) if decoded else None
            if message is None:
                message = truncate(text) if text.strip() else f"HTTP {status}"
            raise error_for_status(status, message, retry_after=retry_after)
        if not decoded:
            ctype = headers.get("Content-Type", "unknown type")
            raise InvalidResponseError(
                f"answer is not JSON ({truncate(ctype, 60)}): {truncate(text, 120)!r}"
            )
        if payload is None:
            raise InvalidResponseError("answer body is empty")
        raise_for_envelope(payload, retry_after=retry_after)
        return payload

    def _scrub_json(self, value: object) -> object:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, list):
            return [self._scrub_json(item) for item in value]
        if isinstance(value, dict):
            return {k: self._scrub_json(v) for k, v in value.items()}
        return value

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        # A key shorter than this is a test stand-in, not a secret, and replacing it would
        # mangle ordinary words and ids (a key "task" inside "task_id").
        if not key or len(key) < MIN_SECRET_LENGTH:
            return text
        return text.replace(key, REDACTED)

    def _describe(self, exc: BaseException) -> str:
        detail = truncate(self._redact(str(exc)), 160)
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise RuntimeError("the aiohttp session given to HappyHorseClient is closed")
            self._session = aiohttp.ClientSession()
        return self._session


MIN_SECRET_LENGTH = 8


def _retriable(exc: HappyHorseError, may_duplicate: bool) -> bool:
    """Whether a failed attempt may be sent again (see HappyHorseClient's retry rule)."""
    if isinstance(exc, RateLimitError):
        return True
    if isinstance(exc, APIConnectionError):
        return not may_duplicate or not exc.request_sent
    if may_duplicate:
        return False
    return isinstance(exc, ServerError | APITimeoutError)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> str:
    """Read at most `limit` bytes of an answer body as text (longer answers are refused)."""
    if resp.content_length is not None and resp.content_length > limit:
        raise InvalidResponseError(f"answer is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise InvalidResponseError(f"answer is larger than {limit} bytes")
        chunks.append(chunk)
    charset = resp.charset or "utf-8"
    try:
        return b"".join(chunks).decode(charset, errors="replace")
    except LookupError:
        return b"".join(chunks).decode("utf-8", errors="replace")

