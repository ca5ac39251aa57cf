"""The client address: REMOTE_ADDR unless the peer is a trusted proxy, then the right-most untrusted forwarded address."""
from __future__ import annotations

import pytest
from django.test import RequestFactory

from apps.core.clients import client_address


def _address(settings, proxies: list[str], remote: str, forwarded: str | None = None) -> str:  # noqa: ANN001
    settings.SUITE_TRUSTED_PROXIES = proxies
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


@pytest.mark.parametrize(("proxies", "remote", "forwarded", "client"), [
    ([], "198.51.100.7", "1.2.3.4", "198.51.100.7"),  # off by default: the header is ignored
    (["10.0.0.0/8"], "198.51.100.7", "1.2.3.4", "198.51.100.7"),  # a peer that is not a proxy is the client
    (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4", "1.2.3.4"),
    (["10.0.0.0/8"], "10.0.0.2", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client's own entries are to the left
    (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4, 10.1.1.1", "1.2.3.4"),  # two trusted hops
    (["10.0.0.0/8"], "10.0.0.2", "10.1.1.1", "10.1.1.1"),  # only proxies: the farthest one
    (["10.0.0.0/8"], "10.0.0.2", "garbage, 1.2.3.4", "1.2.3.4"),
    (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4, garbage", "10.0.0.2"),  # an unreadable hop stops the walk
    (["10.0.0.0/8"], "10.0.0.2", "", "10.0.0.2"),
    (["10.0.0.0/8"], "10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
    (["::1"], "::1", "1.2.3.4:5555", "1.2.3.4"),
    ([], "::ffff:198.51.100.7", None, "198.51.100.7"),  # one client, one bucket
    ([], "", None, "unknown"),
])
def test_the_client_address(settings, proxies: list[str], remote: str, forwarded: str | None, client: str) -> None:  # noqa: ANN001
    assert _address(settings, proxies, remote, forwarded) == client

