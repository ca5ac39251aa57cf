"""The options every Kafka client of the suite is built with: the brokers and their security (TLS, SASL).

Producers, consumers and admin clients in services/ and pipelines/ all start from `kafka_client_options()`, so
KAFKA_SECURITY_PROTOCOL and its companions (config/settings.py validates them) reach each one alike.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings


def kafka_servers() -> list[str]:
    """KAFKA_BOOTSTRAP_SERVERS as a list of host:port."""
    return [s.strip() for s in settings.KAFKA_BOOTSTRAP_SERVERS.split(",") if s.strip()]


def kafka_client_options(*, bootstrap_servers: list[str] | None = None) -> dict[str, Any]:
    """kafka-python keyword arguments shared by KafkaProducer, KafkaConsumer and KafkaAdminClient.

    1. The brokers: `bootstrap_servers`, else KAFKA_BOOTSTRAP_SERVERS.
    2. The protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    3. Over TLS: the certificate checks (hostname included) against KAFKA_SSL_CAFILE or the system's CAs, and a
       client certificate and key when given.
    4. With SASL: the mechanism, user and password.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers if bootstrap_servers is not None else kafka_servers(),
        "security_protocol": settings.KAFKA_SECURITY_PROTOCOL,
    }
    if settings.KAFKA_SECURITY_PROTOCOL in {"SSL", "SASL_SSL"}:
        options["ssl_check_hostname"] = True
        for key, value in (("ssl_cafile", settings.KAFKA_SSL_CAFILE), ("ssl_certfile", settings.KAFKA_SSL_CERTFILE),
                           ("ssl_keyfile", settings.KAFKA_SSL_KEYFILE)):
            if value:
                options[key] = value
    if settings.KAFKA_SECURITY_PROTOCOL in {"SASL_PLAINTEXT", "SASL_SSL"}:
        options.update(sasl_mechanism=settings.KAFKA_SASL_MECHANISM, sasl_plain_username=settings.KAFKA_SASL_USERNAME,
                       sasl_plain_password=settings.KAFKA_SASL_PASSWORD)
    return options
