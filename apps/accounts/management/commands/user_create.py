"""Create or update a person's account with one role.

    python manage.py user_create --username alice --role support_agent --password-env ALICE_PASSWORD
"""
from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts.roles import ROLES, role_get
from services.output import json_line


class Command(BaseCommand):
    help = "Create or update a user with a role (support_agent, risk_analyst, admin, api_client)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--username", required=True)
        parser.add_argument("--role", required=True, choices=sorted(ROLES))
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="the password (prefer --password-env: argv is visible to others)")
        parser.add_argument("--password-env", help="name of an environment variable holding the password")
        parser.add_argument("--skip-validation", action="store_true", help="accept a weak password (demo only)")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        role = role_get(opts["role"])
        password = opts["password"]
        if opts["password_env"]:
            password = os.environ.get(opts["password_env"])
            if not password:
                raise CommandError(f"Environment variable {opts['password_env']} is empty or not set.")
        user_model = get_user_model()
        with transaction.atomic():
            user, created = user_model.objects.get_or_create(username=opts["username"], defaults={"email": opts["email"]})
            if password:
                if not opts["skip_validation"]:
                    try:
                        validate_password(password, user)
                    except ValidationError as exc:
                        raise CommandError("Password rejected: " + " ".join(exc.messages)) from None
                user.set_password(password)
            elif created:
                user.set_unusable_password()
            user.is_staff = role.key == "admin"
            user.is_superuser = role.key == "admin"
            user.save()
            user.groups.set([Group.objects.get(name=role.group)])
        self.stdout.write(json_line({"username": user.username, "role": role.key, "created": created}))
