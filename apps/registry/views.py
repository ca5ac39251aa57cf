from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.access import access_required
from apps.registry.models import AliasEvent, BaseModel, Task
from services.errors import SuiteError
from services.registry import operations as ops
from services.registry.versions import version_promote, version_rollback

OPEN_ALERTS_SHOWN = 50
ACKNOWLEDGED_SHOWN = 20


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
    """Model operations: per task its champion, schedule, lock, runs, champion history and drift; alerts. Live over /ws/registry/ops/."""
    return render(request, "registry/operations.html", {
        "rows": ops.operations_overview(),
        "alerts": ops.ops_alert_list(state="open")[:OPEN_ALERTS_SHOWN],
        "acknowledged": ops.ops_alert_list(state="acknowledged")[:ACKNOWLEDGED_SHOWN],
        "min_examples_setting": settings.RETRAIN_MIN_EXAMPLES,
    })


@require_POST
@access_required("registry")
def retrain_now(request: HttpRequest, task: str) -> HttpResponse:
    force = request.POST.get("force") == "1"
    try:
        celery_id = ops.retrain_enqueue(task=task, force=force)
    except SuiteError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Queued a {'forced ' if force else ''}retrain of {task} (Celery id {celery_id}); "
                                  "its progress shows below as a worker picks it up.")
    return redirect("registry:operations")


@require_POST
@access_required("registry")
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    try:
        ops.ops_alert_acknowledge(alert_id=alert_id, actor=request.user.get_username(), comment=request.POST.get("comment", ""))
    except SuiteError as exc:
        messages.error(request, exc.message)
    return redirect("registry:operations")
