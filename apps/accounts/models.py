from __future__ import annotations

from django.conf import settings
from django.db import models


class Access(models.Model):
    """Holds the suite's access permissions; it has no table of its own."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("access_support", "Use the support desk agent console"),
            ("access_sentiment", "Use the market sentiment monitor"),
            ("access_recommender_api", "Call the recommender API"),
            ("access_recommender_admin", "View the recommender admin page"),
            ("access_registry", "Manage the model registry"),
        ]


class ApiToken(models.Model):
    """A machine client's API token: only its SHA-256 is stored; it expires, can be revoked and is scoped.

    The token itself is shown once, when `api_token_create` issues it (services/accounts/tokens.py).
    """

    FAMILIES = ("recommender", "sentiment", "support", "registry")  # the API families a scope may name

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True)  # sha256 hex of the token
    prefix = models.CharField(max_length=8)  # its first characters, to tell tokens apart in lists and logs
    scopes = models.JSONField(default=list)  # API families this token may call, a subset of FAMILIES
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # None: never
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.user.get_username()} {self.prefix}…"
