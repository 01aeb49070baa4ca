"""Result downloads reach only http(s) and public addresses, on every redirect hop, but for
the API's own address (the sandbox on 127.0.0.1).

The end-to-end cases redirect only to loopback addresses: if the guard ever broke, the
connection attempt would stay on this machine. Private and link-local addresses are
checked where the guard decides, without sending anything.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from happyhorse.client import HappyHorseClient
from happyhorse.download_guard import (
    DownloadGuard,
    ForbiddenAddressError,
    GuardedResolver,
    address_kind,
    own_addresses,
)
from happyhorse.errors import DownloadError
from happyhorse.sandbox import SandboxServer
from happyhorse.sandbox.state import Phase
from tests.happyhorse.conftest import client_settings
from tests.happyhorse.test_client_contract import REQUEST


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    """Loopback, private and link-local (IPv4, IPv6, IPv4-mapped) are named; public is None."""
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_url_checks_scheme_and_literal_addresses() -> None:
    """Only http(s); an IP-address host is judged at once, the API's own is allowed."""
    guard = DownloadGuard({ipaddress.ip_address("127.0.0.1")})
    guard.check_url(URL("http://127.0.0.1:8080/files/a.mp4"))
    guard.check_url(URL("https://cdn.example/a.mp4"))  # names: judged when resolved
    for url, words in [
        ("ftp://cdn.example/a.mp4", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://10.0.0.1/a.mp4", "private address"),
        ("http://[fe80::1]/a.mp4", "link-local address"),
        ("http://169.254.169.254/latest/meta-data", "link-local address"),
        ("http://127.0.0.2/a.mp4", "loopback address"),
    ]:
        with pytest.raises(ForbiddenAddressError, match=words):
            guard.check_url(URL(url))


class FixedResolver(AbstractResolver):
    """Answers every name with the given addresses (no DNS, no traffic)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_names_are_judged_on_the_addresses_dns_returns() -> None:
    """A name that resolves to a private address is refused; of a mixed answer only the
    allowed addresses are handed to the connection."""
    guard = DownloadGuard({ipaddress.ip_address("127.0.0.1")})
    with pytest.raises(ForbiddenAddressError, match=r"cdn\.example \(10\.1\.2\.3\).*private"):
        await GuardedResolver(guard, FixedResolver("10.1.2.3")).resolve("cdn.example", 80)
    with pytest.raises(ForbiddenAddressError, match="link-local"):
        await GuardedResolver(guard, FixedResolver("169.254.169.254")).resolve("meta", 80)
    mixed = GuardedResolver(guard, FixedResolver("::1", "127.0.0.1", "93.184.216.34"))
    assert [r["host"] for r in await mixed.resolve("sandbox.test", 80)] == [
        "127.0.0.1",
        "93.184.216.34",
    ]


async def test_only_a_non_public_base_url_opens_its_own_addresses() -> None:
    """The exception is the API's own address, and only when it is not public."""
    resolver = FixedResolver("93.184.216.34")
    assert await own_addresses("https://api.happyhorse.ai", resolver) == frozenset()
    assert await own_addresses("http://127.0.0.1:9000", resolver) == {
        ipaddress.ip_address("127.0.0.1")
    }
    assert await own_addresses("http://sandbox.test", FixedResolver("127.0.0.1", "::1")) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


async def finished_clip(client: HappyHorseClient, sandbox: SandboxServer) -> str:
    """A completed sandbox task's result URL."""
    task = await client.generate(REQUEST)
    sandbox.state.force(task.task_id, Phase.COMPLETED)
    status = await client.status(task.task_id)
    assert status.video_url is not None
    return status.video_url


async def test_a_redirect_off_the_sandbox_is_refused(
    sandbox: SandboxServer, dialect: str, tmp_path: Path
) -> None:
    """The sandbox (127.0.0.1, the API's own address) redirects a download to another
    loopback address, IPv6 loopback, or a non-http scheme: each is a clear DownloadError,
    and nothing is written."""
    port = URL(sandbox.base_url).port
    async with HappyHorseClient(client_settings(sandbox.base_url, dialect=dialect)) as client:
        url = await finished_clip(client, sandbox)
        for target, words in [
            (f"http://127.0.0.2:{port}/files/x.mp4", r"127\.0\.0\.2: a loopback address"),
            (f"http://[::1]:{port}/files/x.mp4", r"::1: a loopback address"),
            ("ftp://files.example/x.mp4", "only http and https"),
        ]:
            sandbox.state.faults.add("download", redirect_to=target)
            with pytest.raises(DownloadError, match=words):
                await client.download(url, tmp_path / "v.mp4", max_bytes=20_000_000)
        assert list(tmp_path.iterdir()) == []


async def test_every_hop_is_checked(
    sandbox: SandboxServer, dialect: str, tmp_path: Path
) -> None:
    """A first redirect back to the sandbox is followed; the second, off it, is refused."""
    port = URL(sandbox.base_url).port
    async with HappyHorseClient(client_settings(sandbox.base_url, dialect=dialect)) as client:
        url = await finished_clip(client, sandbox)
        sandbox.state.faults.add("download", redirect_to=url)
        sandbox.state.faults.add("download", redirect_to=f"http://127.0.0.2:{port}/x.mp4")
        with pytest.raises(DownloadError, match="loopback address"):
            await client.download(url, tmp_path / "v.mp4", max_bytes=20_000_000)
    assert len(sandbox.state.faults) == 0  # both hops were requested from the sandbox
    assert sandbox.state.request_counts["download"] == 2


async def test_the_sandbox_itself_still_downloads_through_redirects(
    sandbox: SandboxServer, dialect: str, tmp_path: Path
) -> None:
    """Redirects that stay on the API's own address, by number or by name, still work."""
    async with HappyHorseClient(client_settings(sandbox.base_url, dialect=dialect)) as client:
        url = await finished_clip(client, sandbox)
        by_name = str(URL(url).with_host("localhost"))
        sandbox.state.faults.add("download", redirect_to=url)
        sandbox.state.faults.add("download", redirect_to=by_name)
        size = await client.download(url, tmp_path / "v.mp4", max_bytes=20_000_000)
        downloads = client._download_session
        assert downloads is not None and not downloads.closed
    assert downloads.closed, "the client closes the download session it made"
    data = (tmp_path / "v.mp4").read_bytes()
    assert size == len(data) > 1000 and data[4:8] == b"ftyp"
    assert sandbox.state.request_counts["download"] == 3
