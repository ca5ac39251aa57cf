"""Create a machine client (e.g. the e-commerce backend) and print its API token.

    python manage.py api_token_create --client shop-backend [--rotate]

Clients send it as `Authorization: Token <token>`. The last line printed is JSON.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from apps.accounts.roles import ROLES
from services.output import json_line


class Command(BaseCommand):
    help = "Create (or rotate) the API token of a machine client with the api_client role."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--client", required=True, help="the client's name, e.g. shop-backend")
        parser.add_argument("--rotate", action="store_true", help="replace an existing token")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username=opts["client"])
            if user.has_usable_password():
                user.set_unusable_password()  # machine clients never log in to pages
                user.save()
            user.groups.add(Group.objects.get(name=ROLES["api_client"].group))
            if opts["rotate"]:
                Token.objects.filter(user=user).delete()
            token, created = Token.objects.get_or_create(user=user)
        self.stdout.write(json_line({"client": user.username, "token": token.key, "created": created}))
