"""Every outbound HTTP request of the suite (alert webhooks, feed polling): public addresses only, bounded in time and size.

    from services.outbound import outbound_fetch
    response = outbound_fetch(method="GET", url="https://example.com/rss")

1. The URL must be http(s); its host is resolved once and every address it resolves to must be public (not
   loopback, private, link-local, multicast, reserved, unspecified, nor an IPv4 one of these inside IPv6), unless
   SUITE_OUTBOUND_ALLOW names the host or a network that holds the address.
2. The connection goes to the address that was checked (pinned), so a second DNS answer cannot swap in an
   internal one (DNS rebinding); TLS still verifies the certificate against the host name.
3. Connect and read timeouts, and a deadline for the whole exchange enforced by a timer that shuts the socket.
4. The body is capped as sent and again as decompressed (gzip/deflate bombs).
5. Redirects are never followed by the HTTP client: each hop is checked like the first, at most
   SUITE_OUTBOUND_MAX_REDIRECTS of them.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from services.errors import SuiteError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECTS = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024


class OutboundRefused(SuiteError):
    """The request is not allowed (a private address, a bad scheme, too many redirects, a body past the limit)."""


class OutboundUnreachable(SuiteError):
    """The request was allowed but failed on the way (DNS, connection, timeout): trying later may work."""


@dataclass(frozen=True)
class OutboundResponse:
    url: str  # the last hop's URL (after redirects)
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""  # decompressed


def address_public(address: IPAddress) -> bool:
    """Whether `address` is a public unicast address (an IPv4-mapped/6to4/Teredo IPv6 address is judged as its IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if inner is not None:
            return address_public(inner)
    return address.is_global and not (address.is_loopback or address.is_private or address.is_link_local
                                      or address.is_multicast or address.is_reserved or address.is_unspecified)


def _allow_list() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts, networks = set(), []
    for entry in settings.SUITE_OUTBOUND_ALLOW:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return hosts, networks


def _split(url: str, *, field_name: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or OutboundRefused naming the field."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused(f"{url!r} is not a valid URL.", field=field_name) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused(f"{url!r} must be an http:// or https:// URL with a host.", field=field_name)
    return parts.scheme, parts.hostname.lower().rstrip("."), port or (443 if parts.scheme == "https" else 80)


def _resolve(host: str, port: int, *, field_name: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    # getaddrinfo has no timeout of its own and a dead resolver can hold it for long: it runs in a thread that
    # is waited for as long as a connection may take.
    answer: dict[str, Any] = {}

    def lookup() -> None:
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            answer["error"] = exc

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(settings.SUITE_OUTBOUND_CONNECT_TIMEOUT_S)
    if thread.is_alive():
        raise OutboundUnreachable(f"{host} could not be resolved within {settings.SUITE_OUTBOUND_CONNECT_TIMEOUT_S:g} s.",
                                  field=field_name)
    if "error" in answer:
        raise OutboundUnreachable(f"{host} cannot be resolved: {answer['error']}", field=field_name)
    infos = answer["infos"]
    # The zone of a scoped IPv6 address (fe80::1%eth0) is dropped: a scoped address is link-local anyway.
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def outbound_addresses(*, url: str, field_name: str = "url") -> list[IPAddress]:
    """The addresses to connect to for `url`, checked against the policy (OutboundRefused when one is not allowed).

    1. Resolve the host (an IP literal is its own answer).
    2. Every address must be public or inside an allow-listed network, unless the host itself is allow-listed:
       one internal answer among public ones is refused, as a rebinding resolver would give.
    3. The caller connects to these (the first that answers) and to nothing else.
    """
    _, host, port = _split(url, field_name=field_name)
    addresses = _resolve(host, port, field_name=field_name)
    hosts, networks = _allow_list()
    if host in hosts:
        return addresses
    for address in addresses:
        if not address_public(address) and not any(address in network for network in networks):
            raise OutboundRefused(f"{url!r} points at {address}, a private or reserved address; outbound requests go "
                                  "to public addresses only (SUITE_OUTBOUND_ALLOW lists exceptions).", field=field_name)
    return addresses


def outbound_check(*, url: str, field_name: str = "url") -> None:
    """Refuse, when it is saved, a URL the suite would refuse to call (a host that does not resolve now passes).

    The name may resolve later (or differently): every request checks again, so this is for a clear early error.
    """
    try:
        outbound_addresses(url=url, field_name=field_name)
    except OutboundUnreachable:
        pass


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to checked addresses only (the first that answers); the Host header names the URL's host."""

    def __init__(self, host: str, port: int, *, addresses: list[IPAddress], connect_s: float, read_s: float) -> None:
        super().__init__(host, port, timeout=connect_s)
        self._addresses, self._read_s = addresses, read_s

    def _open(self) -> socket.socket:
        error: OSError | None = None
        for address in self._addresses:
            try:
                sock = socket.create_connection((str(address), self.port), self.timeout)
            except OSError as exc:
                error = exc
                continue
            sock.settimeout(self._read_s)  # from here on the timeout is per read
            return sock
        raise error or OSError("no address to connect to")

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPS(_PinnedHTTP):
    default_port = 443

    def connect(self) -> None:
        self.sock = ssl.create_default_context().wrap_socket(self._open(), server_hostname=self.host)


def _decompress(raw: bytes, *, encoding: str, limit: int, url: str) -> bytes:
    """The decoded body, refused past `limit` bytes however small the compressed input."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise OutboundRefused(f"{url} answered with an unsupported Content-Encoding {encoding!r}.")
    # gzip: a gzip header; deflate: zlib-wrapped by the standard, raw deflate by some servers.
    attempts = [16 + zlib.MAX_WBITS] if "gzip" in encoding else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    for wbits in attempts:
        decoder = zlib.decompressobj(wbits)
        try:
            out = decoder.decompress(raw, limit + 1)  # never more than limit + 1 bytes in memory
        except zlib.error:
            continue
        if len(out) > limit or decoder.unconsumed_tail:
            raise OutboundRefused(f"{url}: the decompressed body is larger than {limit} bytes (SUITE_OUTBOUND_MAX_BYTES).")
        return out
    raise OutboundRefused(f"{url}: the {encoding} body cannot be decompressed.")


def _exchange(*, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> OutboundResponse:
    """One request to one checked, pinned address; the response body read within the limits."""
    scheme, host, port = _split(url, field_name="url")
    addresses = outbound_addresses(url=url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    connection = kind(host, port, addresses=addresses, connect_s=settings.SUITE_OUTBOUND_CONNECT_TIMEOUT_S,
                      read_s=settings.SUITE_OUTBOUND_READ_TIMEOUT_S)
    deadline_s, limit = settings.SUITE_OUTBOUND_DEADLINE_S, settings.SUITE_OUTBOUND_MAX_BYTES
    expired = threading.Event()

    def expire() -> None:  # a server that trickles bytes never trips the per-read timeout: end the exchange
        expired.set()
        if connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(deadline_s, expire)
    timer.daemon = True
    timer.start()
    try:
        connection.request(method, path, body=body, headers={"Accept-Encoding": "gzip, deflate", **headers})
        response = connection.getresponse()
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            raise OutboundRefused(f"{url}: the body of {length} bytes is larger than {limit} (SUITE_OUTBOUND_MAX_BYTES).")
        raw = bytearray()
        while chunk := response.read(CHUNK):
            raw += chunk
            if len(raw) > limit:
                raise OutboundRefused(f"{url}: the body is larger than {limit} bytes (SUITE_OUTBOUND_MAX_BYTES).")
        if expired.is_set():
            raise TimeoutError
        decoded = _decompress(bytes(raw), encoding=response.getheader("Content-Encoding", ""), limit=limit, url=url)
        return OutboundResponse(url=url, status=response.status,
                                headers={k.lower(): v for k, v in response.getheaders()}, body=decoded)
    except TimeoutError:
        what = f"did not finish within {deadline_s:g} s" if expired.is_set() else \
            f"sent nothing for {settings.SUITE_OUTBOUND_READ_TIMEOUT_S:g} s"
        raise OutboundUnreachable(f"{url} timed out: it {what}.") from None
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise OutboundUnreachable(f"{url} timed out: it did not finish within {deadline_s:g} s.") from None
        raise OutboundUnreachable(f"{url}: {exc or type(exc).__name__}") from None
    finally:
        timer.cancel()
        connection.close()


def outbound_fetch(*, method: str, url: str, body: bytes | None = None,
                   headers: dict[str, str] | None = None) -> OutboundResponse:
    """Send one request under the outbound policy, following at most SUITE_OUTBOUND_MAX_REDIRECTS checked redirects.

    1. Send to the checked, pinned address of `url`.
    2. On a redirect with a Location, check the next URL like the first (303, and 301/302 after a POST, become
       a GET without a body, as browsers do) and go on; past the limit, OutboundRefused.
    3. Anything else is returned as it is (4xx and 5xx included): the caller decides what a status means.
    """
    headers = {"User-Agent": "sector-ai-suite", **(headers or {})}
    for _ in range(settings.SUITE_OUTBOUND_MAX_REDIRECTS + 1):
        response = _exchange(method=method, url=url, body=body, headers=headers)
        location = response.headers.get("location")
        if response.status not in REDIRECTS or not location:
            return response
        url = urljoin(url, location)
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    raise OutboundRefused(f"{url}: more than {settings.SUITE_OUTBOUND_MAX_REDIRECTS} redirects "
                          "(SUITE_OUTBOUND_MAX_REDIRECTS).")
