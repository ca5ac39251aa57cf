from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.access import access_required
from apps.registry.models import AliasEvent, BaseModel, Task
from services.errors import SuiteError
from services.registry.versions import version_promote, version_rollback


@access_required("registry")
def index(request: HttpRequest) -> HttpResponse:
    tasks = Task.objects.prefetch_related("versions__base", "versions__aliases", "aliases__version")
    rows = []
    for task in tasks:
        aliases = {a.name: a.version.version for a in task.aliases.all()}
        rows.append({"task": task, "aliases": aliases, "versions": list(task.versions.all()),
                     "events": AliasEvent.objects.filter(task=task)[:20]})
    return render(request, "registry/index.html", {"rows": rows, "bases": BaseModel.objects.all()})


@require_POST
@access_required("registry")
def promote(request: HttpRequest, task: str) -> HttpResponse:
    try:
        outcome = version_promote(task_name=task, version=int(request.POST.get("version", "0")),
                                  actor=request.user.get_username(), force=request.POST.get("force") == "1",
                                  reason=request.POST.get("reason", ""))
    except (SuiteError, ValueError) as exc:
        messages.error(request, str(exc))
    else:
        (messages.success if outcome.promoted else messages.error)(
            request, f"{task} v{outcome.version}: {'promoted' if outcome.promoted else 'not promoted'} — {outcome.reason}")
    return redirect("registry:index")


@require_POST
@access_required("registry")
def rollback(request: HttpRequest, task: str) -> HttpResponse:
    try:
        outcome = version_rollback(task_name=task, actor=request.user.get_username(), reason=request.POST.get("reason", ""))
    except SuiteError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{task}: champion is v{outcome.version} again ({outcome.reason})")
    return redirect("registry:index")


@access_required("registry")
def operations(request: HttpRequest) -> HttpResponse:
    """Model operations: per task its beat schedule, last retrain runs, champion history and current drift."""
    import json

    from django_celery_beat.models import PeriodicTask

    from apps.registry.models import OpsAlert, RetrainRun

    schedules: dict[str, list[PeriodicTask]] = {}
    for p in PeriodicTask.objects.filter(task="training.retrain").select_related("interval", "crontab"):
        try:
            name = json.loads(p.kwargs or "{}").get("task") or (json.loads(p.args or "[]") or [None])[0]
        except (ValueError, TypeError, AttributeError):
            name = None
        schedules.setdefault(name, []).append(p)
    rows = []
    for task in Task.objects.all():
        runs = list(RetrainRun.objects.filter(task=task).select_related("version")[:10])
        for run in runs:
            run.seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
        latest_drift = next((r.drift for r in runs if r.drift), {})
        rows.append({"task": task, "schedules": schedules.get(task.name, []), "runs": runs, "drift": latest_drift,
                     "champion_events": AliasEvent.objects.filter(task=task, alias="champion")[:20]})
    return render(request, "registry/operations.html", {"rows": rows, "alerts": OpsAlert.objects.select_related("task")[:20]})
