"""API tokens of machine clients: issued once in clear, stored as a SHA-256, expiring, revocable, scoped.

A token is 256 random bits (secrets.token_urlsafe(32)); a fast hash is enough for such a secret (no dictionary
to try), and lets a request find its row with one indexed lookup.
"""
from __future__ import annotations

import copy
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
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


# token_find keeps the rows it loaded (with their users) per process, and checks on every call, with one plain SQL
# query, that the token is still unrevoked, unexpired and its user active: nothing a revocation, an expiry or a
# deactivation changes is ever served from memory. Loading the row through the ORM was 2.1 ms of query building and
# model instantiation (23 % of a recommendations request in one process, docs/PERFORMANCE.md); the check is ~0.05 ms.
# A kept row is reloaded after TOKEN_ROW_MAX_AGE_S (the token's and user's other fields, e.g. staff or scopes
# changed in the shell) and the whole cache is dropped past TOKEN_ROWS_MAX entries (random tokens are never kept).
TOKEN_ROW_MAX_AGE_S = 30.0
TOKEN_ROWS_MAX = 10_000
_rows: dict[str, tuple[float, ApiToken]] = {}
_rows_lock = threading.Lock()
_CHECK_SQL: dict[str, str] = {}


def _token_valid_pk(digest: str) -> int | None:
    """The token row's pk when it is unrevoked, unexpired and its user active (one indexed lookup), else None."""
    if connection.vendor not in _CHECK_SQL:
        qn = connection.ops.quote_name
        user = get_user_model()
        t, u = qn(ApiToken._meta.db_table), qn(user._meta.db_table)
        _CHECK_SQL[connection.vendor] = (
            f"SELECT {t}.{qn('id')} FROM {t} INNER JOIN {u} ON {u}.{qn(user._meta.pk.column)} = {t}.{qn('user_id')} "
            f"WHERE {t}.{qn('digest')} = %s AND {t}.{qn('revoked_at')} IS NULL "
            f"AND ({t}.{qn('expires_at')} IS NULL OR {t}.{qn('expires_at')} > %s) AND {u}.{qn('is_active')} = %s")
    with connection.cursor() as cursor:
        cursor.execute(_CHECK_SQL[connection.vendor],
                       [digest, connection.ops.adapt_datetimefield_value(timezone.now()), True])
        found = cursor.fetchone()
    return int(found[0]) if found else None


def token_find(*, token: str) -> ApiToken | None:
    """The active token row (with its user) for a clear token; None when unknown, expired or revoked, or its user
    is inactive. A copy: callers may set attributes on it without touching another request's."""
    digest = token_digest(token=token)
    kept = _rows.get(digest)
    if kept is not None and time.monotonic() - kept[0] < TOKEN_ROW_MAX_AGE_S:
        pk = _token_valid_pk(digest)
        if pk is None:
            return None
        if pk == kept[1].pk:
            row = copy.copy(kept[1])
            row.user = copy.copy(kept[1].user)
            return row
    row = ApiToken.objects.filter(digest=digest, revoked_at__isnull=True).select_related("user").first()
    if row is None or (row.expires_at is not None and row.expires_at <= timezone.now()) or not row.user.is_active:
        return None
    with _rows_lock:
        if len(_rows) >= TOKEN_ROWS_MAX:
            _rows.clear()
        _rows[digest] = (time.monotonic(), row)
    row = copy.copy(row)
    row.user = copy.copy(row.user)
    return row


def token_allows(*, auth: object, area: str) -> bool:
    """Whether a request's credentials may use an access area: tokens only within their scope; sessions always."""
    if not isinstance(auth, ApiToken):
        return True
    return AREA_FAMILY.get(area) in auth.scopes
