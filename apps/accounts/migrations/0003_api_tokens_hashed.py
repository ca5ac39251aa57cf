"""Existing plain DRF tokens become hashed API tokens (scope recommender, the api client role's API) and are deleted.

Clients keep working with the token they hold: it is looked up by its SHA-256. Each expires API_TOKEN_DAYS after
this migration, so old tokens are rotated in time like new ones.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def tokens_hash(apps, schema_editor) -> None:  # noqa: ANN001
    try:
        Token = apps.get_model("authtoken", "Token")  # noqa: N806
    except LookupError:
        return  # rest_framework.authtoken not installed: nothing to migrate
    ApiToken = apps.get_model("accounts", "ApiToken")  # noqa: N806
    days = settings.API_TOKEN_DAYS
    expires = timezone.now() + timedelta(days=days) if days else None
    for old in Token.objects.all():
        ApiToken.objects.get_or_create(digest=hashlib.sha256(old.key.encode()).hexdigest(),
                                       defaults={"user_id": old.user_id, "prefix": old.key[:6], "scopes": ["recommender"],
                                                 "expires_at": expires})
    Token.objects.all().delete()  # the plain keys must not outlive the move


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_api_token"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(tokens_hash, migrations.RunPython.noop)]
