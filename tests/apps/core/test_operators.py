"""Operators' endpoints: /healthz and /readyz answer anyone without addresses; /metrics wants its token."""
from __future__ import annotations

import re
import socket

import numpy as np
import pytest
from django.conf import settings
from django.test import Client, override_settings

from apps.registry.models import RetrainRun, Task
from apps.support.models import KnowledgeBase
from services.ml.runtime import KIND_EMBED, MicroBatcher
from services.support.conversations import message_receive

TOKEN = "metrics-token-for-tests-0123456789"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0.0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_healthz_answers_ok_without_a_sign_in_or_a_cookie(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert not response.cookies


@pytest.mark.django_db
def test_readyz_is_ready_when_every_service_is_up_and_names_each_check(client: Client) -> None:
    settings.REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert [c["name"] for c in body["checks"]] == ["database", "redis", "kafka", "registry", "champions"]
    assert all(c["ok"] is True and c["reason"] for c in body["checks"])


@pytest.mark.django_db
def test_readyz_with_redis_down_is_503_and_reveals_no_address(client: Client, tmp_path) -> None:  # noqa: ANN001
    port = _closed_port()
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{port}/0", SUITE_READY_TIMEOUT_S=0.3,
                           REGISTRY_DIR=tmp_path / "gone"):
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["redis"] == {"name": "redis", "ok": False, "reason": "not reachable"}
    assert checks["registry"] == {"name": "registry", "ok": True, "reason": "nothing registered yet"}
    assert checks["database"]["ok"] is True
    text = response.content.decode()
    kafka_host, _, kafka_port = settings.KAFKA_BOOTSTRAP_SERVERS.split(",")[0].rpartition(":")
    for secret in (str(port), "127.0.0.1", "localhost", kafka_host, kafka_port, str(tmp_path)):
        assert secret not in text


@pytest.mark.django_db
def test_readyz_reports_a_champion_whose_artifact_is_gone(client: Client, tmp_path) -> None:  # noqa: ANN001
    from apps.registry.models import Alias, AdapterVersion, BaseModel

    task = Task.objects.create(name="intent")
    base = BaseModel.objects.create(name="tiny", location="bases/tiny", sha256="0" * 64, embedding_size=8)
    version = AdapterVersion.objects.create(task=task, version=1, base=base, location="intent/v0001", sha256="0" * 64,
                                            data_fingerprint="x", created_by="test")
    Alias.objects.create(task=task, name=Alias.CHAMPION, version=version)
    with override_settings(REGISTRY_DIR=tmp_path):
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["champions"] == {"name": "champions", "ok": False, "reason": "intent v1 artifact incomplete"}
    with override_settings(REGISTRY_DIR=tmp_path / "unmounted"):
        checks = {c["name"]: c for c in client.get("/readyz").json()["checks"]}
    assert checks["registry"] == {"name": "registry", "ok": False, "reason": "folder missing"}
    assert str(tmp_path) not in response.content.decode()


def test_metrics_is_off_without_a_token_setting(client: Client) -> None:
    with override_settings(SUITE_METRICS_TOKEN=""):
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


@pytest.mark.django_db
def test_metrics_refuses_a_missing_or_wrong_token_and_serves_the_text_format_with_it(client: Client) -> None:
    with override_settings(SUITE_METRICS_TOKEN=TOKEN):
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for family in ("suite_inference_seconds", "suite_support_replies", "suite_recommend_seconds"):
        assert f"# TYPE {family}" in text


def _scrape(client: Client) -> str:
    with override_settings(SUITE_METRICS_TOKEN=TOKEN):
        return client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()


@pytest.mark.django_db
def test_a_handoff_moves_the_support_series(client: Client) -> None:
    kb = KnowledgeBase.objects.create(name="empty")
    labels = {"outcome": "handoff", "reason": "empty_kb"}
    before = _sample(_scrape(client), "suite_support_replies_total", **labels)
    assert message_receive(kb=kb, token=None, text="Where is my parcel?").answer.handoff
    assert _sample(_scrape(client), "suite_support_replies_total", **labels) == before + 1


@pytest.mark.django_db
def test_a_micro_batch_moves_the_inference_series(client: Client) -> None:
    class FakeRuntime:
        def embed(self, *, task: str | None, texts: list[str]) -> np.ndarray:
            return np.zeros((len(texts), 4), dtype=np.float32)

    labels = {"task": "metrics-probe", "kind": KIND_EMBED}
    before = _sample(_scrape(client), "suite_inference_batch_size_sum", **labels)
    with MicroBatcher(runtime=FakeRuntime(), max_wait_ms=1.0) as batcher:  # type: ignore[arg-type]
        assert batcher.submit(task="metrics-probe", texts=["a", "b", "c"], kind=KIND_EMBED).result().shape == (3, 4)
    text = _scrape(client)
    assert _sample(text, "suite_inference_batch_size_sum", **labels) == before + 3
    assert _sample(text, "suite_inference_seconds_count", **labels) >= 1


@pytest.mark.django_db
def test_recommendations_and_retrain_runs_show_in_the_series(client: Client) -> None:
    from services.recommender.recommend import recommendations_for

    before = _sample(_scrape(client), "suite_recommend_seconds_count", kind="user")
    recommendations_for(user="nobody", k=3)
    task = Task.objects.create(name="sentiment-metrics")
    RetrainRun.objects.create(task=task, status=RetrainRun.REJECTED)
    RetrainRun.objects.create(task=task, status=RetrainRun.REJECTED)
    text = _scrape(client)
    assert _sample(text, "suite_recommend_seconds_count", kind="user") == before + 1
    assert _sample(text, "suite_retrain_runs", task="sentiment-metrics", outcome="rejected") == 2


def test_probes_are_not_redirected_to_https_when_the_rest_is() -> None:
    with override_settings(SECURE_SSL_REDIRECT=True, SUITE_METRICS_TOKEN=""):
        client = Client()  # a new client loads the middleware under these settings
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 404
        assert client.get("/").status_code == 301


def test_probes_answer_only_get_and_read_no_body(client: Client) -> None:
    assert client.post("/healthz", data=b"x", content_type="text/plain").status_code == 405
    assert client.post("/readyz", data=b"x", content_type="text/plain").status_code == 405


@pytest.mark.django_db
def test_the_vector_index_series_follow_the_last_sync_and_drop_an_encoder_that_was_replaced(client: Client) -> None:
    from services.metrics import vector_index_observe

    vector_index_observe(space="probe-space", encoder="enc-a", revision=3, size=10)
    text = _scrape(client)
    assert _sample(text, "suite_vector_index_revision", space="probe-space", encoder="enc-a") == 3
    assert _sample(text, "suite_vector_index_size", space="probe-space", encoder="enc-a") == 10
    vector_index_observe(space="probe-space", encoder="enc-b", revision=4, size=12)
    text = _scrape(client)
    assert 'encoder="enc-a"' not in text  # one series per space: the switched-away encoder's is gone
    assert _sample(text, "suite_vector_index_revision", space="probe-space", encoder="enc-b") == 4
    assert _sample(text, "suite_vector_index_size", space="probe-space", encoder="enc-b") == 12
    with pytest.raises(ValueError, match="space"):
        vector_index_observe(space="", encoder="enc-b", revision=1, size=1)
