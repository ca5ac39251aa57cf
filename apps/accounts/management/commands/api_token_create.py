"""Create a machine client (e.g. the e-commerce backend) and print its API token, once; rotate or revoke it.

    python manage.py api_token_create --client shop-backend [--scope recommender,sentiment] [--days 90] [--rotate]
    python manage.py api_token_create --client shop-backend --revoke

Clients send it as `Authorization: Token <token>`. Only its SHA-256 is stored: the token is printed once, here.
The scope names the API families it may call (recommender, sentiment, support, registry; default recommender).
A name that belongs to a person (a user who is not an API client) is refused. The last line printed is JSON.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts.roles import ROLES
from services.accounts.tokens import AREA_FAMILY, scopes_parse, token_issue, tokens_active, tokens_revoke
from services.errors import SuiteError
from services.output import json_line


def _is_api_client(user) -> bool:  # noqa: ANN001
    """A machine client: in the api client group only, no password, no staff or admin rights."""
    groups = set(user.groups.values_list("name", flat=True))
    return (groups == {ROLES["api_client"].group} and not user.has_usable_password()
            and not user.is_staff and not user.is_superuser)


class Command(BaseCommand):
    help = "Create (or rotate, or revoke) the API token of a machine client with the api_client role."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--client", required=True, help="the client's name, e.g. shop-backend (not a person's username)")
        parser.add_argument("--scope", default="recommender", help="API families, comma-separated: recommender, sentiment, support, registry")
        parser.add_argument("--days", type=int, default=None, help="lifetime in days (default API_TOKEN_DAYS; 0: never expires)")
        parser.add_argument("--rotate", action="store_true", help="revoke the client's tokens and issue a new one")
        parser.add_argument("--revoke", action="store_true", help="revoke the client's tokens; issue none")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            scopes = scopes_parse(text=opts["scope"])
        except SuiteError as exc:
            raise CommandError(f"--scope: {exc.message}") from None
        name = opts["client"]
        with transaction.atomic():
            user = get_user_model().objects.filter(username=name).first()
            if user is not None and not _is_api_client(user):
                raise CommandError(f"{name!r} is a person's account, not an API client: tokens are only for machine clients. "
                                   "Choose another --client name.")
            if opts["revoke"]:
                revoked = tokens_revoke(user=user) if user else 0
                self.stdout.write(json_line({"client": name, "revoked": revoked}))
                return
            if user is None:
                user = get_user_model().objects.create(username=name)
                user.set_unusable_password()  # machine clients never log in to pages
                user.save()
                user.groups.add(Group.objects.get(name=ROLES["api_client"].group))
            elif tokens_active(user=user) and not opts["rotate"]:
                raise CommandError(f"{name!r} already has an active token (it was shown once, when issued). "
                                   "--rotate replaces it, --revoke ends it.")
            tokens_revoke(user=user)
            self._grant(user, scopes)
            try:
                issued = token_issue(user=user, scopes=scopes, days=opts["days"])
            except SuiteError as exc:
                raise CommandError(f"--{exc.field}: {exc.message}") from None
        expires = issued.row.expires_at.isoformat() if issued.row.expires_at else None
        self.stdout.write(json_line({"client": user.username, "token": issued.token, "scopes": scopes, "expires_at": expires,
                                     "created": True, "rotated": bool(opts["rotate"])}))

    def _grant(self, user, scopes: list[str]) -> None:  # noqa: ANN001
        """The client's own permissions are its scope's access areas (the api client role alone reaches the recommender)."""
        codenames = [f"access_{area}" for area, family in AREA_FAMILY.items() if family in scopes and area != "recommender_admin"]
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames))
