"""Choose which task's champion embeds a knowledge base (its items and the questions asked of it).

    python manage.py support_kb_encoder --kb default --task retrieval   # the `retrieval` champion embeds this KB
    python manage.py support_kb_encoder --kb default --clear            # back to SUPPORT_EMBED_TASK / the base
    python manage.py support_kb_encoder --kb default                    # show the choice and the encoder in use

A change re-embeds the KB beside its old vectors (on an `inference` worker, or here with SUITE_VECTORS_EMBED=process)
and switches once complete; a task without a champion yet leaves the base in use until its first promotion.
The last line printed is one JSON object: {"kb", "embed_task", "encoder", "pending_encoder"}.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from services.errors import SuiteError
from services.output import json_line


class Command(BaseCommand):
    help = "Set (or show) the pairs task whose champion embeds a support knowledge base; re-embeds it on a change."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--kb", default="default")
        choice = parser.add_mutually_exclusive_group()
        choice.add_argument("--task", default=None, help="a pairs task, e.g. retrieval")
        choice.add_argument("--clear", action="store_true", help="back to SUPPORT_EMBED_TASK (or the default base)")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        from services.support.knowledge import kb_embed_task_set, kb_get, kb_space
        from services.vectors import space_ensure, space_status

        try:
            kb = kb_get(name=opts["kb"])
            if opts["clear"] or opts["task"] is not None:
                out = kb_embed_task_set(kb=kb, task="" if opts["clear"] else opts["task"])
            else:
                status = space_status(space=space_ensure(name=kb_space(kb)).name)
                out = {"kb": kb.name, "embed_task": kb.embed_task or None, "encoder": status["encoder"],
                       "pending_encoder": status["pending_encoder"]}
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line(out))
