"""Where a result download may go: http(s) only, and only to public addresses.

A result URL comes from the video service's answer, and each redirect from whatever server
that URL names, so neither is trusted: a download must not become a way to reach the bot's
own machine or network (a loopback admin port, a private service, the cloud metadata
address at 169.254.169.254). `DownloadGuard` refuses every address that is not global
unicast (loopback, private, link-local, shared, reserved, multicast, unspecified; IPv4 and
IPv6, IPv4-mapped IPv6 judged as the IPv4 inside), except the addresses of the API's own
base URL: the sandbox (and a test server) runs on 127.0.0.1 and serves its clips there.

It is applied twice, so nothing slips between the check and the connection:
- to the URL of every hop before it is requested (scheme, and a host written as an IP
  address, which aiohttp connects to without asking a resolver);
- inside the connection, by `GuardedResolver`: every name is checked on the addresses DNS
  returned, and aiohttp connects only to those that pass (no second lookup to rebind).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOWED_SCHEMES = ("http", "https")


class ForbiddenAddressError(OSError):
    """A download would connect to an address the guard refuses; the message says which."""


def address_kind(address: IPAddress) -> str | None:
    """What makes `address` off-limits ("loopback", "private", ...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return kind
    return None if address.is_global else "non-public"


def parse_address(text: str) -> IPAddress | None:
    """`text` as an IP address (an IPv6 zone id dropped), or None if it is a name."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


class DownloadGuard:
    """The rule: which addresses a download may connect to (see the module docstring)."""

    def __init__(self, allowed: Iterable[IPAddress] = ()) -> None:
        self.allowed = frozenset(allowed)

    def check_address(self, host: str, address: IPAddress) -> None:
        """Raise ForbiddenAddressError unless a download may connect to `address`."""
        if address in self.allowed:
            return
        kind = address_kind(address)
        if kind is not None:
            where = str(address) if host == str(address) else f"{host} ({address})"
            raise ForbiddenAddressError(
                f"refused to download from {where}: a {kind} address, and not the API's own"
            )

    def check_url(self, url: URL) -> None:
        """Raise ForbiddenAddressError for a scheme other than http(s), or an IP-address
        host the guard refuses (names are checked when they are resolved)."""
        if url.scheme not in ALLOWED_SCHEMES:
            raise ForbiddenAddressError(
                f"refused to download from a {url.scheme or 'relative'}: URL (only http and https)"
            )
        host = url.raw_host or ""
        if not host:
            raise ForbiddenAddressError("refused to download from a URL without a host")
        address = parse_address(host)
        if address is not None:
            self.check_address(host, address)


class GuardedResolver(AbstractResolver):
    """A resolver that hands the connector only the addresses the guard allows.

    A name with no allowed address fails with the reason for its first one; a name with
    some (say 127.0.0.1 allowed for the sandbox, ::1 not) connects only to those.
    """

    def __init__(self, guard: DownloadGuard, inner: AbstractResolver | None = None) -> None:
        self.guard = guard
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve with the inner resolver, then keep the addresses the guard allows."""
        allowed: list[ResolveResult] = []
        refusal: ForbiddenAddressError | None = None
        for result in await self._inner.resolve(host, port, family):
            address = parse_address(result["host"])
            try:
                if address is None:
                    raise ForbiddenAddressError(f"{host} resolved to {result['host']!r}")
                self.guard.check_address(host, address)
            except ForbiddenAddressError as exc:
                refusal = refusal or exc
                continue
            allowed.append(result)
        if not allowed:
            raise refusal or ForbiddenAddressError(f"{host} resolved to no address")
        return allowed

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


async def own_addresses(base_url: str, resolver: AbstractResolver) -> frozenset[IPAddress]:
    """The non-public addresses of the API's base URL host (empty for a public API): the
    only ones a download may reach beside public addresses."""
    host = URL(base_url).raw_host or ""
    literal = parse_address(host)
    if literal is not None:
        found = {literal}
    else:
        try:
            results = await resolver.resolve(host, 0, socket.AF_UNSPEC)
        except OSError:
            return frozenset()  # unreachable API: downloads get no exception either
        found = {a for r in results if (a := parse_address(r["host"])) is not None}
    return frozenset(a for a in found if address_kind(a) is not None)
