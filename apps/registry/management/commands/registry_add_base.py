"""Register a local Hugging Face model folder as a base encoder (nothing is downloaded).

    python manage.py registry_add_base --name my-encoder --path /models/my-encoder [--licence MIT] [--default]
    python manage.py registry_add_base --name all-minilm-l6-v2 --path package:all-minilm-l6-v2

A folder outside SUITE_REGISTRY_DIR is copied into it (`bases/<name>-<sha12>`), so every host that mounts the
registry loads the same base; a packaged model is recorded by name and found in each host's site-packages.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from services.errors import SuiteError
from services.output import json_line
from services.registry.versions import base_register


class Command(BaseCommand):
    help = "Register a local Hugging Face model folder as a base encoder."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--name", required=True)
        parser.add_argument("--path", required=True, help="the model folder, or package:<name> for a packaged model")
        parser.add_argument("--licence", default="")
        parser.add_argument("--default", action="store_true", help="make it the base new adapters use")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            base = base_register(name=opts["name"], path=opts["path"], licence=opts["licence"], default=opts["default"])
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line({"name": base.name, "location": base.location, "path": base.path, "sha256": base.sha256,
                                      "embedding_size": base.embedding_size, "default": base.is_default}))
