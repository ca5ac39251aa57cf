"""Who is calling: the client address behind the suite's trusted proxies, for throttles and login lockout.

`X-Forwarded-For` is written by whoever sends the request, so it is believed only as far as the chain of
SUITE_TRUSTED_PROXIES goes: with none configured (the default) the client is the TCP peer, REMOTE_ADDR, and the
header is ignored; behind a trusted proxy the client is the right-most forwarded address that is not itself a
trusted proxy (the addresses to its left were written by the client and prove nothing).
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import SimpleRateThrottle

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a header or REMOTE_ADDR entry ("[::1]:443" and "1.2.3.4:80" included), or None."""
    text = text.strip().strip('"')
    if text.startswith("["):  # [v6]:port
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:1.2.3.4 is 1.2.3.4: one client, one bucket
    return mapped or address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(request: HttpRequest) -> str:
    """The calling client's address as text ("unknown" when the peer's address cannot be read).

    1. The peer is REMOTE_ADDR. With no trusted proxies, or a peer that is not one, the peer is the client.
    2. Otherwise walk X-Forwarded-For from the right, skipping trusted proxies; the first other address is the
       client. An unreadable entry stops the walk: it cannot be trusted, so the last trusted hop is the client.
    """
    meta = request.META
    peer = _address(meta.get("REMOTE_ADDR", "") or "")
    if peer is None:
        return "unknown"
    networks = _networks(tuple(settings.SUITE_TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return str(peer)
    client = peer
    for entry in reversed((meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")):
        if not entry.strip():
            continue
        address = _address(entry)
        if address is None:
            break
        client = address
        if not _trusted(address, networks):
            break
    return str(client)


def axes_client_ip(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: django-axes locks out by the same client address the throttles use.

    None when the peer's address cannot be read (a Unix socket, a request built in code): axes' address columns are
    PostgreSQL `inet`, which refuses the text "unknown"; NULL is what axes itself stores then.
    """
    address = client_address(request)
    return None if address == "unknown" else address


class ClientAddressThrottleMixin:
    """For every DRF throttle of the suite: identify an anonymous caller by client_address, never by raw XFF.

    DRF's own get_ident trusts X-Forwarded-For blindly unless NUM_PROXIES is set (settings set it to 0 as a
    second guard); this replaces it with the trusted-proxy rule above.
    """

    def get_ident(self, request) -> str:  # noqa: ANN001 - DRF's signature
        return client_address(request)


class SuiteRateThrottle(ClientAddressThrottleMixin, SimpleRateThrottle):
    """A per-address throttle whose rate is a setting read on each request (so tests and operators can change it)."""

    rate_setting = ""  # the name of the setting holding "N/period"

    def __init__(self) -> None:  # DRF reads the rate here; ours is read per request in allow_request
        pass

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def get_cache_key(self, request, view) -> str | None:  # noqa: ANN001
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view) -> bool:  # noqa: ANN001
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)
