"""Where merchant webhooks may go: never to this machine's or a cloud's private insides.

A webhook URL comes from configuration, but a careless or hostile value would make
minigate POST signed events (and reveal response timing) to internal services. So:

* at save (start-up), the URL must be absolute, ``https`` outside sandbox mode, and any
  literal IP in it must be public;
* at send, every address the host resolves to must be public (loopback, private,
  link-local, carrier-grade NAT, metadata endpoints such as 169.254.169.254 and
  100.100.100.200, multicast and reserved ranges are all refused). Sandbox mode may allow
  loopback explicitly (the demo posts to itself);
* and the POST goes to the address that was checked (:func:`pinned`): a second DNS lookup
  by the HTTP client could answer differently (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from minigate.errors import InvalidRequest

Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeDestination(InvalidRequest):
    code = "unsafe_webhook_destination"


def _address_allowed(address: str, allow_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, require_https: bool, allow_loopback: bool) -> tuple[str, int]:
    """Validate a webhook URL's form; returns (host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDestination(f"webhook URL must be an absolute http(s) URL: {url!r}",
                                param="webhook_url")
    if require_https and parts.scheme != "https":
        raise UnsafeDestination("webhook URL must use https outside sandbox mode",
                                param="webhook_url")
    if parts.username or parts.password:
        raise UnsafeDestination("webhook URL must not carry credentials", param="webhook_url")
    host = parts.hostname
    literal = _literal_ip(host)
    if literal is None:
        name = host.rstrip(".")
        if (name == "localhost" or name.endswith(".localhost")) and not allow_loopback:
            raise UnsafeDestination("webhook URL points at this machine", param="webhook_url")
    elif not _address_allowed(literal, allow_loopback):
        raise UnsafeDestination(f"webhook URL address {host} is not public",
                                param="webhook_url")
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def _literal_ip(host: str) -> str | None:
    """The address a host names literally, including the legacy IPv4 spellings that
    resolvers accept (``2130706433``, ``127.1``, ``0x7f.1`` are all 127.0.0.1)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_resolved(host: str, port: int, *, allow_loopback: bool,
                         resolver: Resolver = system_resolver) -> list[str]:
    """``host``'s addresses; refuse the send if any of them is not public."""
    try:
        addresses = await resolver(host, port)
    except OSError as exc:
        raise UnsafeDestination(f"webhook host {host} does not resolve",
                                param="webhook_url") from exc
    bad = [a for a in addresses if not _address_allowed(a, allow_loopback)]
    if not addresses or bad:
        raise UnsafeDestination(f"webhook host {host} resolves to a non-public address",
                                param="webhook_url")
    return addresses


def pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(URL, headers, httpx extensions) that send ``url``'s request to ``address``.

    The URL carries the checked address, so the client does not resolve the name again;
    the ``Host`` header and the TLS server name (SNI, which the certificate is verified
    against) carry the original host, so the merchant's server and certificate see the
    request exactly as before.
    """
    original = httpx.URL(url)
    return (str(original.copy_with(host=address)),
            {"Host": original.netloc.decode("ascii")},
            {"sni_hostname": original.host})
