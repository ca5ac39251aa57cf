"""The client address: REMOTE_ADDR unless the peer is a trusted proxy, then the right-most untrusted forwarded address."""
from __future__ import annotations

import pytest
from django.test import RequestFactory

from apps.core.clients import axes_client_ip, client_address


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



@pytest.mark.django_db
def test_a_sign_in_without_a_readable_peer_address_is_recorded_without_one(client, django_user_model) -> None:  # noqa: ANN001
    """axes' columns are `inet` on PostgreSQL: "unknown" would crash the sign-in there; the address is NULL."""
    from axes.models import AccessAttempt, AccessLog

    assert axes_client_ip(RequestFactory().get("/", REMOTE_ADDR="")) is None
    assert axes_client_ip(RequestFactory().get("/", REMOTE_ADDR="198.51.100.7")) == "198.51.100.7"
    user = django_user_model.objects.create_user("someone", password="right-pass")
    client.force_login(user)  # signs in with a request built in code: no REMOTE_ADDR
    assert AccessLog.objects.get(username="someone").ip_address is None
    client.logout()
    response = client.post("/accounts/login/", {"username": "someone", "password": "wrong-pass"}, REMOTE_ADDR="")
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert AccessAttempt.objects.get(username="someone").ip_address is None
