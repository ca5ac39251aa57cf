"""Outbound HTTP under the policy, against real local servers: internal addresses refused, redirects re-checked,
silent servers and oversized or compressed-bomb answers ended with a clear error."""
from __future__ import annotations

import gzip
import ipaddress
import zlib
from collections.abc import Iterator

import pytest

from services.outbound import (
    OutboundRefused,
    OutboundUnreachable,
    address_public,
    outbound_addresses,
    outbound_check,
    outbound_fetch,
)
from tests.config.test_settings import run_manage
from tests.helpers import QuietHandler, http_serve, silent_server

INTERNAL = ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
            "169.254.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "100.64.0.1", "::1", "::",
            "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
            "::ffff:10.0.0.1", "2002:7f00:1::1"]  # the last: 6to4 wrapping 127.0.0.1
PUBLIC = ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not address_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are(address: str) -> None:
    assert address_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hook", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://localhost/x",
                                 "http://2130706433/x", "http://0x7f.1/x"])
def test_urls_that_reach_internal_addresses_are_refused_naming_the_field(url: str) -> None:
    with pytest.raises(OutboundRefused) as caught:
        outbound_check(url=url, field_name="webhook_url")
    assert caught.value.field == "webhook_url"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://example.com/x", "http://", "not a url"])
def test_other_schemes_and_broken_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match="http"):
        outbound_check(url=url)


def test_the_allow_list_takes_hosts_and_networks(settings) -> None:  # noqa: ANN001
    settings.SUITE_OUTBOUND_ALLOW = ["10.0.0.0/8", "127.0.0.1"]
    assert outbound_addresses(url="http://10.20.30.40/x") == [ipaddress.ip_address("10.20.30.40")]
    assert outbound_addresses(url="http://127.0.0.1:9/x") == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(OutboundRefused):
        outbound_addresses(url="http://169.254.169.254/")
    settings.SUITE_OUTBOUND_ALLOW = ["localhost"]  # a host name: whatever it resolves to
    assert ipaddress.ip_address("127.0.0.1") in outbound_addresses(url="http://LOCALHOST:8000/x")


def test_a_bad_allow_list_entry_is_refused_naming_the_variable() -> None:
    result = run_manage("check", SUITE_OUTBOUND_ALLOW="10.0.0.0/8, not a host!")
    assert result.returncode != 0 and "SUITE_OUTBOUND_ALLOW" in result.stderr


class Scripted(QuietHandler):
    """Answers by path: /ok, /redirect?to=URL, /loop (redirects to itself), /big, /bomb, /gzip, /deflate."""

    def do_GET(self) -> None:  # noqa: N802
        path, _, query = self.path.partition("?")
        if path == "/redirect":
            self._send(302, b"", {"Location": query.removeprefix("to=")})
        elif path == "/loop":
            self._send(301, b"", {"Location": "/loop"})
        elif path == "/big":
            self._send(200, b"x" * 300_000)
        elif path == "/big-chunked":  # no Content-Length: the limit must hold while reading
            self.send_response(200)
            self.end_headers()
            for _ in range(300):
                self.wfile.write(b"y" * 1000)
        elif path == "/bomb":  # 50 MB of zeros in about 50 KB
            self._send(200, gzip.compress(b"\0" * 50_000_000, compresslevel=9), {"Content-Encoding": "gzip"})
        elif path == "/gzip":
            self._send(200, gzip.compress(b"<rss>hello</rss>"), {"Content-Encoding": "gzip"})
        elif path == "/deflate":
            self._send(200, zlib.compress(b"<rss>deflated</rss>"), {"Content-Encoding": "deflate"})
        else:
            self._send(200, b"fine")

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def scripted(settings) -> Iterator[str]:  # noqa: ANN001
    """The scripted server, reached as http://localhost:PORT with only the host name `localhost` allow-listed."""
    settings.SUITE_OUTBOUND_ALLOW = ["localhost"]
    with http_serve(Scripted) as base:
        yield base.replace("127.0.0.1", "localhost")


def test_an_allowed_server_answers(scripted: str) -> None:
    response = outbound_fetch(method="GET", url=f"{scripted}/ok")
    assert (response.status, response.body) == (200, b"fine")


def test_a_redirect_from_an_allowed_server_to_an_internal_address_is_refused(scripted: str) -> None:
    port = scripted.rsplit(":", 1)[1]
    for target in (f"http://127.0.0.1:{port}/ok", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(OutboundRefused, match="private or reserved"):
            outbound_fetch(method="GET", url=f"{scripted}/redirect?to={target}")
        with pytest.raises(OutboundRefused, match="private or reserved"):
            outbound_fetch(method="POST", url=f"{scripted}/redirect?to={target}", body=b"{}")


def test_allowed_redirects_are_followed_up_to_the_limit(scripted: str, settings) -> None:  # noqa: ANN001
    response = outbound_fetch(method="GET", url=f"{scripted}/redirect?to=/gzip")
    assert response.status == 200 and response.url == f"{scripted}/gzip" and response.body == b"<rss>hello</rss>"
    settings.SUITE_OUTBOUND_MAX_REDIRECTS = 0
    with pytest.raises(OutboundRefused, match="more than 0 redirects"):
        outbound_fetch(method="GET", url=f"{scripted}/redirect?to=/ok")
    settings.SUITE_OUTBOUND_MAX_REDIRECTS = 3
    with pytest.raises(OutboundRefused, match="more than 3 redirects"):
        outbound_fetch(method="GET", url=f"{scripted}/loop")


def test_compressed_answers_are_decoded_and_bodies_past_the_limit_refused(scripted: str, settings) -> None:  # noqa: ANN001
    assert outbound_fetch(method="GET", url=f"{scripted}/deflate").body == b"<rss>deflated</rss>"
    settings.SUITE_OUTBOUND_MAX_BYTES = 100_000
    with pytest.raises(OutboundRefused, match="larger than 100000"):
        outbound_fetch(method="GET", url=f"{scripted}/big")
    with pytest.raises(OutboundRefused, match="larger than 100000"):
        outbound_fetch(method="GET", url=f"{scripted}/big-chunked")
    settings.SUITE_OUTBOUND_MAX_BYTES = 10 * 1024 * 1024  # the default: the bomb is small as sent, huge decoded
    with pytest.raises(OutboundRefused, match="decompressed body is larger"):
        outbound_fetch(method="GET", url=f"{scripted}/bomb")


def test_a_server_that_never_answers_ends_with_a_timeout(settings) -> None:  # noqa: ANN001
    settings.SUITE_OUTBOUND_ALLOW = ["127.0.0.1"]
    settings.SUITE_OUTBOUND_READ_TIMEOUT_S = 0.3
    with silent_server() as url, pytest.raises(OutboundUnreachable, match="timed out: it sent nothing for 0.3 s"):
        outbound_fetch(method="GET", url=f"{url}/feed.xml")


def test_a_server_that_trickles_bytes_is_stopped_at_the_deadline(settings) -> None:  # noqa: ANN001
    settings.SUITE_OUTBOUND_ALLOW = ["127.0.0.1"]
    settings.SUITE_OUTBOUND_DEADLINE_S = 0.5  # each byte comes well within the read timeout
    with silent_server(trickle=True) as url, pytest.raises(OutboundUnreachable, match="did not finish within 0.5 s"):
        outbound_fetch(method="GET", url=f"{url}/feed.xml")


def test_a_host_whose_name_never_resolves_ends_within_the_connect_timeout(settings, monkeypatch) -> None:  # noqa: ANN001
    import socket
    import threading

    never = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: never.wait(30))  # a resolver that hangs
    settings.SUITE_OUTBOUND_CONNECT_TIMEOUT_S = 0.2
    try:
        with pytest.raises(OutboundUnreachable, match="could not be resolved within 0.2 s"):
            outbound_fetch(method="GET", url="https://feeds.example.com/rss")
        outbound_check(url="https://feeds.example.com/rss")  # when saved: passes, checked again at each call
    finally:
        never.set()
