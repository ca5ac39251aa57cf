"""DRF authentication by API token (`Authorization: Token <token>`), looked up by its SHA-256 (services/accounts/tokens.py)."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed


class ApiTokenAuthentication(BaseAuthentication):
    """The header DRF's TokenAuthentication reads; an unknown, expired or revoked token → 401 "Invalid token."."""

    keyword = "Token"

    def authenticate(self, request):  # noqa: ANN001, ANN201
        from services.accounts.tokens import token_find

        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None  # not ours: the session (or nobody) decides
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: send `Authorization: Token <token>`.")
        try:
            token = parts[1].decode("ascii")
        except UnicodeError:
            raise AuthenticationFailed("Invalid token header: the token holds characters no token has.") from None
        row = token_find(token=token)
        if row is None or not row.user.is_active:
            raise AuthenticationFailed("Invalid token.")  # DRF's words; unknown, expired and revoked look alike
        return row.user, row

    def authenticate_header(self, request) -> str:  # noqa: ANN001 - makes DRF answer 401 (not 403) without credentials
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token in /api/schema/ as DRF's own token scheme was."""

    target_class = "apps.accounts.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "Token-based authentication with required prefix \"Token\""}
