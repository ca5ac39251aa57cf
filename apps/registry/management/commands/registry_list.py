"""List tasks, versions, aliases and metrics.

    python manage.py registry_list [--task sentiment]
"""
from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.registry.models import Alias, Task
from services.output import json_line


class Command(BaseCommand):
    help = "List the registry's tasks and versions (last line: JSON)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--task")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        tasks = Task.objects.all()
        if opts["task"]:
            tasks = tasks.filter(name=opts["task"])
        out = []
        for task in tasks:
            aliases = {a.name: a.version.version for a in Alias.objects.filter(task=task).select_related("version")}
            versions = [{"version": v.version, "metrics": v.metrics, "created_by": v.created_by} for v in task.versions.all()]
            for v in versions:
                tags = [name for name, num in aliases.items() if num == v["version"]]
                self.stdout.write(f"{task.name:14} v{v['version']:<4} {' '.join(tags):20} {json_line(v['metrics'])}")
            out.append({"task": task.name, **aliases, "versions": versions})
        self.stdout.write(json_line(out))
