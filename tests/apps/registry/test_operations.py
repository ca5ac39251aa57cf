"""Model operations (admin): the page, its REST API and its live channel; failed runs raise an alert."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from apps.registry.models import OpsAlert, RetrainRun, Task
from services.registry.versions import task_ensure
from tests.helpers import run_json


@pytest.mark.django_db(transaction=True)
def test_the_operations_page_is_for_admins_and_lists_runs_and_schedules(client, role_users) -> None:  # noqa: ANN001
    from services.registry.retrain import retrain_schedules_ensure

    retrain_schedules_ensure()
    task = task_ensure(name="sentiment")
    RetrainRun.objects.create(task=task, status=RetrainRun.REJECTED, reason="gate failed: macro_f1 fell", finished_at=timezone.now(),
                              n_new_examples=7, n_examples=97, metrics={"macro_f1": 0.41}, champion_metrics={"macro_f1": 0.77},
                              drift={"label_tvd": 0.375, "new": {"negative": 1.0}, "train": {"negative": 0.5}})
    assert client.get("/registry/operations/").status_code == 302
    assert "/login" in client.get("/registry/operations/")["Location"]
    client.force_login(role_users["support_agent"])
    assert client.get("/registry/operations/").status_code == 403
    client.force_login(role_users["admin"])
    page = client.get("/registry/operations/").content.decode()
    assert "Model operations" in page and 'data-status="rejected"' in page and "gate failed: macro_f1 fell" in page
    assert "7 / 97" in page and "macro_f1=0.41" in page and "macro_f1=0.77" in page and "label TVD 0.375" in page
    assert "retrain sentiment: every 1 hours" in page and "/admin/django_celery_beat/periodictask/" in page
    assert "/registry/operations/" in client.get("/registry/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_raises_an_alert_shown_on_the_operations_page(client, role_users, tmp_path: Path) -> None:  # noqa: ANN001
    from django.core.management.base import CommandError

    base = tmp_path / "base.csv"
    base.write_bytes(b"")  # an empty base file is recorded (the registry keeps a copy): the run fails reading it
    task = task_ensure(name="sentiment")
    with pytest.raises(CommandError, match="empty"):
        run_json("retrain", task="sentiment", force=True, base_data=str(base), held_back=str(base))
    alert = OpsAlert.objects.get()
    assert alert.task == task and alert.run.status == RetrainRun.FAILED and "retrain of sentiment failed" in alert.message
    client.force_login(role_users["admin"])
    page = client.get("/registry/operations/").content.decode()
    assert f'data-alert="{alert.pk}"' in page and "retrain of sentiment failed" in page


@pytest.mark.django_db(transaction=True)
def test_a_run_abandoned_by_a_crashed_worker_raises_an_alert_too() -> None:
    from pipelines.retrain import retrain_run

    task = task_ensure(name="sentiment")
    abandoned = RetrainRun.objects.create(task=task)
    retrain_run(task="sentiment")  # no data configured: a quick, skipped run that closes the dead one
    alert = OpsAlert.objects.get()
    assert alert.run == abandoned and "abandoned" in alert.message


# --- the page's additions ------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_page_shows_champion_minimum_lock_progress_and_embedding_drift(client, role_users, settings) -> None:  # noqa: ANN001
    from datetime import timedelta

    settings.RETRAIN_MIN_EXAMPLES = 20
    sentiment, intent = task_ensure(name="sentiment"), task_ensure(name="intent")
    Task.objects.filter(pk=sentiment.pk).update(retrain_min_examples=7, retrain_lock_owner="w1",
                                                retrain_lock_expires_at=timezone.now() + timedelta(minutes=4))
    RetrainRun.objects.create(task=sentiment, status=RetrainRun.SKIPPED, finished_at=timezone.now(), drift={
        "label_tvd": 0.1, "new": {}, "train": {},
        "embedding": {"centroid_cosine_distance": 0.0312, "domain_auc": 0.912, "drifted": True, "n_new": 40, "n_reference": 256}})
    RetrainRun.objects.create(task=sentiment, phase="training", progress={"step": 12, "total": 40})
    RetrainRun.objects.create(task=intent, status=RetrainRun.SKIPPED, finished_at=timezone.now(), drift={
        "label_tvd": 0.0, "new": {}, "train": {}, "embedding": {"note": "too few incoming texts (3 < 10)", "n_new": 3, "n_reference": 80}})
    client.force_login(role_users["admin"])
    page = client.get("/registry/operations/").content.decode()
    sections = {name: page[page.index(f'data-task="{name}"'):] for name in ("intent", "sentiment")}
    sections["intent"] = sections["intent"][:sections["intent"].index('data-task="sentiment"')]
    s, i = sections["sentiment"], sections["intent"]
    assert 'id="ops-live"' in page and 'data-state="connecting"' in page and "registry/operations.js" in page
    assert "Champion: <strong" in s and ">none</strong>" in s
    assert 'class="min-examples">7<' in s and "this task's own" in s
    assert 'class="min-examples">20<' in i and "the RETRAIN_MIN_EXAMPLES setting" in i
    assert 'data-lock="held"' in s and "held until" in s and 'data-lock="free"' in i
    assert "training 12/40 steps" in s and '<progress max="40" value="12">' in s
    assert "domain AUC 0.912" in s and "centroid distance 0.0312" in s and 'class="tag drifted"' in s
    assert "too few incoming texts (3 &lt; 10)" in i and "drifted" not in i
    assert 'action="/registry/operations/sentiment/retrain"' in s and 'name="force"' in s


@pytest.mark.django_db(transaction=True)
def test_an_admin_acknowledges_an_alert_on_the_page_and_it_moves_under_acknowledged(client, role_users) -> None:  # noqa: ANN001
    task = task_ensure(name="sentiment")
    alert = OpsAlert.objects.create(task=task, message="retrain of sentiment failed (run 1): disk full")
    client.force_login(role_users["admin"])
    page = client.get("/registry/operations/").content.decode()
    assert page.index(f'data-alert="{alert.pk}"') < page.index('id="alerts-acknowledged"')
    response = client.post(f"/registry/operations/alerts/{alert.pk}/acknowledge", {"comment": "freed space"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == "boss" and alert.acknowledged_at is not None
    assert alert.acknowledged_comment == "freed space" and "freed space" not in alert.message
    page = client.get("/registry/operations/").content.decode()
    assert page.index(f'data-alert="{alert.pk}"') > page.index('id="alerts-acknowledged"')
    assert "No open alerts." in page and "Acknowledged (<span class=\"count\">1</span>)" in page
    again = client.post(f"/registry/operations/alerts/{alert.pk}/acknowledge", follow=True).content.decode()
    assert "already acknowledged by boss" in again


# --- the API ---------------------------------------------------------------------------------------------------

API_CALLS = [("get", "/api/registry/operations"), ("get", "/api/registry/tasks/sentiment"),
             ("patch", "/api/registry/tasks/sentiment"), ("get", "/api/registry/tasks/sentiment/schedules"),
             ("patch", "/api/registry/tasks/sentiment/schedules/1"), ("post", "/api/registry/tasks/sentiment/retrain"),
             ("get", "/api/registry/ops-alerts"), ("post", "/api/registry/ops-alerts/1/acknowledge")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "url"), API_CALLS)
def test_the_operations_api_refuses_anonymous_callers_and_non_admins(client, role_users, method: str, url: str) -> None:  # noqa: ANN001
    task_ensure(name="sentiment")
    call = getattr(client, method)
    assert call(url, {}, content_type="application/json").status_code == 401
    for role in ("support_agent", "risk_analyst", "api_client"):
        client.force_login(role_users[role])
        assert call(url, {}, content_type="application/json").status_code == 403, role
    assert OpsAlert.objects.filter(acknowledged_at__isnull=False).count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_operations_api_gives_each_task_and_the_open_alerts(client, role_users, settings) -> None:  # noqa: ANN001
    from datetime import timedelta

    from services.registry.retrain import retrain_schedules_ensure

    settings.RETRAIN_MIN_EXAMPLES = 20
    retrain_schedules_ensure()
    task = task_ensure(name="sentiment")
    Task.objects.filter(pk=task.pk).update(retrain_lock_owner="w1", retrain_lock_expires_at=timezone.now() + timedelta(minutes=1))
    for n in range(12):
        RetrainRun.objects.create(task=task, status=RetrainRun.SKIPPED, finished_at=timezone.now(), reason=f"run {n}",
                                  drift={"label_tvd": n / 100})
    running = RetrainRun.objects.create(task=task, phase="evaluating", progress={"step": 5, "total": 5})
    open_alert = OpsAlert.objects.create(task=task, message="it broke")
    OpsAlert.objects.create(task=task, message="old news", acknowledged_at=timezone.now(), acknowledged_by="ann")
    client.force_login(role_users["admin"])
    body = client.get("/api/registry/operations").json()
    assert [a["id"] for a in body["alerts"]] == [open_alert.pk]
    row = next(t for t in body["tasks"] if t["task"] == "sentiment")
    assert row["kind"] == "classifier" and row["champion"] is None and row["min_examples"] == 20
    assert row["lock"]["held"] is True and row["lock"]["expires_at"]
    assert [s["name"] for s in row["schedules"]] == ["retrain sentiment"]
    assert row["schedules"][0]["interval"] == {"every": 1, "period": "hours"} and row["schedules"][0]["kwargs"] == {"task": "sentiment"}
    assert len(row["runs"]) == 10 and row["runs"][0]["id"] == running.pk
    assert row["runs"][0]["phase"] == "evaluating" and row["runs"][0]["progress"] == {"step": 5, "total": 5}
    assert row["drift"] == {"label_tvd": 0.11}  # the newest run that measured any
    assert row["champion_history"] == []


@pytest.mark.django_db(transaction=True)
def test_a_schedule_patch_edits_the_periodic_task_and_bad_values_are_refused_naming_the_field(client, role_users) -> None:  # noqa: ANN001
    import json

    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from services.registry.retrain import retrain_schedules_ensure

    retrain_schedules_ensure()
    task_ensure(name="sentiment")
    task_ensure(name="intent")
    client.force_login(role_users["admin"])
    (listed,) = client.get("/api/registry/tasks/sentiment/schedules").json()
    assert listed["name"] == "retrain sentiment" and listed["enabled"] is True and listed["queue"] == "training"
    url = f"/api/registry/tasks/sentiment/schedules/{listed['id']}"

    response = client.patch(url, {"enabled": False, "every": 6, "period": "hours", "force": True}, content_type="application/json")
    assert response.status_code == 200, response.content
    stored = PeriodicTask.objects.select_related("interval").get(pk=listed["id"])
    assert not stored.enabled and (stored.interval.every, stored.interval.period) == (6, "hours")
    assert json.loads(stored.kwargs) == {"task": "sentiment", "force": True}
    assert response.json()["interval"] == {"every": 6, "period": "hours"} and response.json()["kwargs"]["force"] is True
    client.patch(url, {"force": False, "period": "days"}, content_type="application/json")
    stored.refresh_from_db()
    assert json.loads(stored.kwargs) == {"task": "sentiment"} and (stored.interval.every, stored.interval.period) == (6, "days")

    for bad, field in (({"every": 0}, "every"), ({"every": "often"}, "every"), ({"period": "fortnights"}, "period"),
                       ({"enabled": "perhaps"}, "enabled"), ({"evry": 2}, "evry"), ({}, None)):
        response = client.patch(url, bad, content_type="application/json")
        body = response.json()
        assert response.status_code == 400 and body["error"] == "invalid" and body.get("field") == field, (bad, response.content)
        if field is None:  # nothing sent: the object's own error, no field at fault
            assert "Send any of enabled, every, period, force." in body["detail"] and "errors" not in body
        else:
            assert body["detail"].startswith(f"{field}: ") and body["errors"][0] == {"field": field, "detail": body["detail"]}
    stored.refresh_from_db()
    assert (stored.interval.every, stored.interval.period, stored.enabled) == (6, "days", False)  # nothing changed

    intent_id = PeriodicTask.objects.get(name="retrain intent").pk
    assert client.patch(f"/api/registry/tasks/sentiment/schedules/{intent_id}", {"enabled": False},
                        content_type="application/json").status_code == 404  # another task's schedule
    assert PeriodicTask.objects.get(pk=intent_id).enabled
    assert client.patch("/api/registry/tasks/sentiment/schedules/999999", {"enabled": False},
                        content_type="application/json").status_code == 404

    nightly = CrontabSchedule.objects.create(minute="0", hour="3")
    PeriodicTask.objects.filter(pk=listed["id"]).update(interval=None, crontab=nightly)
    response = client.patch(url, {"every": 2}, content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == "period"  # a crontab needs both
    assert client.get("/api/registry/tasks/sentiment/schedules").json()[0]["crontab"].startswith("0 3 ")


@pytest.mark.django_db(transaction=True)
def test_an_admin_sets_a_tasks_minimum_of_new_examples_or_clears_it(client, role_users, settings) -> None:  # noqa: ANN001
    settings.RETRAIN_MIN_EXAMPLES = 20
    task_ensure(name="sentiment")
    client.force_login(role_users["admin"])
    response = client.patch("/api/registry/tasks/sentiment", {"retrain_min_examples": 5}, content_type="application/json")
    assert response.status_code == 200 and response.json()["min_examples"] == 5
    assert Task.objects.get(name="sentiment").retrain_min_examples == 5
    assert 'class="min-examples">5<' in client.get("/registry/operations/").content.decode()
    for bad in (0, -3, "many", 2.5):
        response = client.patch("/api/registry/tasks/sentiment", {"retrain_min_examples": bad}, content_type="application/json")
        body = response.json()
        assert response.status_code == 400 and body["error"] == "invalid" and body["field"] == "retrain_min_examples", bad
        assert body["detail"].startswith("retrain_min_examples: ") and [e["field"] for e in body["errors"]] == ["retrain_min_examples"]
    assert client.patch("/api/registry/tasks/sentiment", {}, content_type="application/json").status_code == 400
    assert Task.objects.get(name="sentiment").retrain_min_examples == 5
    response = client.patch("/api/registry/tasks/sentiment", {"retrain_min_examples": None}, content_type="application/json")
    assert response.json()["retrain_min_examples"] is None and response.json()["min_examples"] == 20
    assert Task.objects.get(name="sentiment").retrain_min_examples is None
    assert client.patch("/api/registry/tasks/nosuch", {"retrain_min_examples": 3}, content_type="application/json").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_alerts_are_filtered_by_task_and_state_and_acknowledged_once(client, role_users) -> None:  # noqa: ANN001
    sentiment, intent = task_ensure(name="sentiment"), task_ensure(name="intent")
    first = OpsAlert.objects.create(task=sentiment, message="sentiment broke")
    second = OpsAlert.objects.create(task=intent, message="intent broke")
    client.force_login(role_users["admin"])
    ids = lambda query: [a["id"] for a in client.get("/api/registry/ops-alerts", query).json()]  # noqa: E731
    assert ids({}) == [second.pk, first.pk] and ids({"task": "intent"}) == [second.pk]

    response = client.post(f"/api/registry/ops-alerts/{first.pk}/acknowledge", {"comment": "known: disk"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "boss" and response.json()["acknowledged_at"]
    first.refresh_from_db()
    assert first.acknowledged_by == "boss" and first.message == "sentiment broke" and first.acknowledged_comment == "known: disk"
    assert ids({}) == [second.pk] and ids({"state": "acknowledged"}) == [first.pk]
    assert ids({"state": "all"}) == [second.pk, first.pk] and ids({"state": "all", "task": "sentiment"}) == [first.pk]

    again = client.post(f"/api/registry/ops-alerts/{first.pk}/acknowledge", {}, content_type="application/json")
    assert again.status_code == 400 and "already acknowledged" in again.json()["detail"]
    assert client.get("/api/registry/ops-alerts", {"state": "closed"}).status_code == 400
    assert client.get("/api/registry/ops-alerts", {"task": "nosuch"}).status_code == 404
    assert client.post("/api/registry/ops-alerts/999999/acknowledge", {}, content_type="application/json").status_code == 404


def test_the_schema_documents_the_operations_endpoints(client, role_users) -> None:  # noqa: ANN001
    client.force_login(role_users["admin"])
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert {"/api/registry/operations", "/api/registry/tasks/{task}", "/api/registry/tasks/{task}/schedules",
            "/api/registry/tasks/{task}/schedules/{schedule_id}", "/api/registry/tasks/{task}/retrain",
            "/api/registry/ops-alerts", "/api/registry/ops-alerts/{alert_id}/acknowledge"} <= set(paths)
    assert {"get", "patch"} <= set(paths["/api/registry/tasks/{task}/schedules/{schedule_id}"])
    assert {p["name"] for p in paths["/api/registry/ops-alerts"]["get"]["parameters"]} == {"task", "state"}


# --- run now ---------------------------------------------------------------------------------------------------

@pytest.fixture
def broker_down() -> object:
    """Make this thread's Celery app publish to a port where nothing listens (the real failure, not a mock)."""
    import socket

    from celery import Celery

    from config.celery import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Celery("broker-down", broker=f"redis://127.0.0.1:{port}/0", set_as_current=False)
    dead.conf.broker_transport_options = app.conf.broker_transport_options
    dead.set_current()
    try:
        yield dead
    finally:
        app.set_current()


@pytest.mark.django_db(transaction=True)
def test_run_now_queues_retrains_that_a_real_worker_runs(client, role_users, celery_worker_process) -> None:  # noqa: ANN001
    import time

    from celery.signals import after_task_publish

    published = []

    def on_publish(sender: str, headers: dict, routing_key: str, **_: object) -> None:  # fired once the broker took it
        published.append((headers["task"], headers["id"], routing_key))

    task_ensure(name="sentiment")
    task_ensure(name="intent")
    client.force_login(role_users["admin"])
    after_task_publish.connect(on_publish, weak=False)
    try:
        response = client.post("/api/registry/tasks/sentiment/retrain", {"force": True}, content_type="application/json")
    finally:
        after_task_publish.disconnect(on_publish)
    assert response.status_code == 202 and response.json()["task"] == "sentiment"
    assert published == [("training.retrain", response.json()["celery_id"], "training")]
    page = client.post("/registry/operations/intent/retrain", {}, follow=True).content.decode()  # the page's form, no force
    assert "Queued a retrain of intent" in page
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and RetrainRun.objects.exclude(status=RetrainRun.RUNNING).count() < 2:
        time.sleep(0.5)
    runs = {r.task.name: r for r in RetrainRun.objects.select_related("task")}
    assert set(runs) == {"sentiment", "intent"}, "the worker did not run both queued retrains within 90 s"
    # Neither task has its data configured, so each run is a quick, recorded skip: proof the worker ran it.
    assert runs["sentiment"].forced and not runs["intent"].forced
    assert all(r.status == RetrainRun.SKIPPED and "no base data" in r.reason for r in runs.values())
    assert client.post("/api/registry/tasks/nosuch/retrain", {}, content_type="application/json").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_run_now_with_the_broker_down_says_so_instead_of_failing(client, role_users, broker_down) -> None:  # noqa: ANN001
    task_ensure(name="sentiment")
    client.force_login(role_users["admin"])
    response = client.post("/api/registry/tasks/sentiment/retrain", {}, content_type="application/json")
    assert response.status_code == 503 and response.json()["error"] == "service_unavailable"
    assert "broker cannot be reached" in response.json()["detail"]
    page = client.post("/registry/operations/sentiment/retrain", {"force": "1"}, follow=True)
    assert page.status_code == 200
    assert "was not queued: the Celery broker cannot be reached" in page.content.decode()


# --- the live channel --------------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_ops_websocket_is_for_admins_and_forwards_pushes(role_users) -> None:  # noqa: ANN001
    from asgiref.sync import async_to_sync, sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth.models import AnonymousUser

    from config.asgi import application
    from services.registry.live import ops_push
    from services.registry.operations import ops_alert_acknowledge

    def communicator(user) -> WebsocketCommunicator:  # noqa: ANN001
        c = WebsocketCommunicator(application, "/ws/registry/ops/", headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")])
        c.scope["user"] = user
        return c

    async def scenario() -> dict[str, object]:
        refused = {}
        for name, user in (("anonymous", AnonymousUser()), ("agent", role_users["support_agent"]), ("analyst", role_users["risk_analyst"])):
            refused[name] = await communicator(user).connect(timeout=10)
        admin = communicator(role_users["admin"])
        connected, _ = await admin.connect(timeout=10)
        assert connected
        await sync_to_async(ops_push)(event="run_progress", payload={"run": 1, "task": "sentiment", "phase": "training"})
        received = await admin.receive_json_from(timeout=10)
        await sync_to_async(ops_alert_acknowledge)(alert_id=alert.pk, actor="boss")  # other open pages dim it
        acknowledged = await admin.receive_json_from(timeout=10)
        await admin.disconnect()
        return {"refused": refused, "received": received, "acknowledged": acknowledged}

    alert = OpsAlert.objects.create(task=task_ensure(name="sentiment"), message="it broke")
    out = async_to_sync(scenario)()
    assert out["refused"] == {"anonymous": (False, 4401), "agent": (False, 4403), "analyst": (False, 4403)}
    assert out["received"] == {"event": "run_progress", "data": {"run": 1, "task": "sentiment", "phase": "training"}}
    assert out["acknowledged"]["event"] == "alert_acknowledged"
    assert out["acknowledged"]["data"]["id"] == alert.pk and out["acknowledged"]["data"]["acknowledged_by"] == "boss"
