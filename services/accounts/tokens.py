"""API tokens of machine clients: issued once in clear, stored as a SHA-256, expiring, revocable, scoped.

A token is 256 random bits (secrets.token_urlsafe(32)); a fast hash is enough for such a secret (no dictionary
to try), and lets a request find its row with one indexed lookup.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import ApiToken
from services.errors import SuiteError

# Access areas (apps.accounts.access.ACCESS) → the API family a token's scope names.
AREA_FAMILY = {"recommender_api": "recommender", "recommender_admin": "recommender", "sentiment": "sentiment",
               "support": "support", "registry": "registry"}


@dataclass(frozen=True)
class IssuedToken:
    token: str  # the clear token: shown once, never stored
    row: ApiToken


def token_digest(*, token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def scopes_parse(*, text: str) -> list[str]:
    """"recommender,sentiment" → ["recommender", "sentiment"]; an unknown family → SuiteError naming `scope`."""
    scopes = sorted({part.strip().lower() for part in text.split(",") if part.strip()})
    unknown = [s for s in scopes if s not in ApiToken.FAMILIES]
    if unknown or not scopes:
        raise SuiteError(f"Unknown or empty scope {', '.join(unknown) or text!r}; choose from: {', '.join(ApiToken.FAMILIES)}.",
                         field="scope")
    return scopes


def token_issue(*, user, scopes: list[str], days: int | None = None) -> IssuedToken:  # noqa: ANN001
    """A new token for `user`: random, stored hashed, expiring after `days` (API_TOKEN_DAYS by default; 0: never)."""
    days = settings.API_TOKEN_DAYS if days is None else days
    if days < 0:
        raise SuiteError("`days` must be 0 (never expires) or more.", field="days")
    token = secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, digest=token_digest(token=token), prefix=token[:6], scopes=scopes_parse(text=",".join(scopes)),
                                  expires_at=timezone.now() + timedelta(days=days) if days else None)
    return IssuedToken(token=token, row=row)


def tokens_active(*, user) -> list[ApiToken]:  # noqa: ANN001
    now = timezone.now()
    return list(ApiToken.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), user=user, revoked_at__isnull=True))


def tokens_revoke(*, user) -> int:  # noqa: ANN001
    """Revoke every active token of `user`; how many were active."""
    with transaction.atomic():
        return ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())


def token_find(*, token: str) -> ApiToken | None:
    """The active token row (with its user) for a clear token; None when unknown, expired or revoked."""
    row = ApiToken.objects.filter(digest=token_digest(token=token), revoked_at__isnull=True).select_related("user").first()
    if row is None or (row.expires_at is not None and row.expires_at <= timezone.now()):
        return None
    return row


def token_allows(*, auth: object, area: str) -> bool:
    """Whether a request's credentials may use an access area: tokens only within their scope; sessions always."""
    if not isinstance(auth, ApiToken):
        return True
    return AREA_FAMILY.get(area) in auth.scopes
