"""HTTP fuzzing: Schemathesis cases from the suite's own OpenAPI schema, sent in process as each kind of caller.

Used by `python -m pipelines.fuzz http` (pipelines/fuzz.py) and by tests/fuzz/test_fuzz_http.py. Every operation of
`/api/schema/` is fuzzed with every identity (each role signed in by session, the shop's API token, anonymous):
positive cases (valid by the schema) and negative ones (invalid), with path parameters drawn at random and, for
part of the cases, naming objects that exist (so validation past the 404 is reached). Each answer must:

- not be a 5xx (a 503 counts too: the fuzz runs with its backing services up);
- conform to the schema (status code, content type, body), as Schemathesis' own checks judge it;
- when it is a 4xx, be the suite's one error shape `{error, detail, field?, errors?}` (apps/core/errors.py).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import requests
from hypothesis import HealthCheck, Phase, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import FailedHealthCheck, FlakyStrategyDefinition, Unsatisfiable

BASE_URL = "http://testserver"
ERROR_KEYS = {"error", "detail", "field", "errors"}
ATTEMPTS_PER_CASE = 25  # rejected draws allowed per wanted case before a plan gives up (see _PlanExhausted)
AUTH_HEADERS = {"authorization", "cookie"}  # generated credentials are dropped: each identity brings its own


@dataclass
class Identity:
    """One kind of caller: a Django test client already signed in (session) or carrying `headers` (token)."""

    name: str
    client: Any  # django.test.Client
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpReport:
    """What a campaign did: cases sent, answers by status class, and its failures grouped by kind.

    Failures with the same operation, status and first problem are one entry (with a count and the first
    request that showed it), so a bug that every case of an operation meets is listed once.
    """

    cases: int = 0
    http_5xx: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)
    queued: list[str] = field(default_factory=list)  # Celery tasks the API asked for (never sent to a broker)

    def record(self, *, status: int, failure: dict[str, Any] | None) -> None:
        self.cases += 1
        self.http_5xx += status >= 500
        key = f"{status // 100}xx"
        self.by_status[key] = self.by_status.get(key, 0) + 1
        if failure is not None:
            kind = (failure["operation"], status, failure["problems"][0].split(":")[0])
            entry = self.failures.setdefault(kind, {**failure, "count": 0, "identities": []})
            entry["count"] += 1
            if failure["identity"] not in entry["identities"]:
                entry["identities"].append(failure["identity"])

    def as_dict(self) -> dict[str, Any]:
        failures = [{k: v for k, v in entry.items() if k != "identity"} for entry in self.failures.values()]
        return {"cases": self.cases, "http_5xx": self.http_5xx, "by_status": dict(sorted(self.by_status.items())),
                "failed_cases": sum(entry["count"] for entry in failures), "failures": failures,
                "queued": len(self.queued)}


def schema_load(*, client: Any) -> Any:
    """The suite's OpenAPI schema as served at /api/schema/ (read by `client`), loaded by Schemathesis.

    1. GET /api/schema/?format=json (the endpoint needs a signed-in caller).
    2. Load it; generated security parameters (Authorization, sessionid) are turned off: identities bring theirs.
    """
    import schemathesis

    response = client.get("/api/schema/", {"format": "json"})
    if response.status_code != 200:
        raise RuntimeError(f"/api/schema/ answered {response.status_code}: {response.content[:200]!r}")
    schema = schemathesis.openapi.from_dict(json.loads(response.content))
    schema.config.generation.update(with_security_parameters=False)
    return schema


def error_shape_problem(*, status: int, content_type: str, body: bytes) -> str | None:
    """Why a 4xx answer is not the suite's one error shape, or None when it is."""
    if not 400 <= status < 500:
        return None
    if "json" not in content_type:
        return f"a {status} answered {content_type or 'no content type'}, not JSON"
    try:
        data = json.loads(body)
    except ValueError:
        return f"a {status} answered a body that is not JSON: {body[:120]!r}"
    if not isinstance(data, dict) or not {"error", "detail"} <= set(data) or set(data) - ERROR_KEYS:
        return f"a {status} answered {str(data)[:200]}, not {{error, detail, field?, errors?}}"
    if not isinstance(data["error"], str) or not isinstance(data["detail"], str) or not data["detail"]:
        return f"a {status} answered error/detail that are not text: {str(data)[:200]}"
    if "field" in data and (not isinstance(data["field"], str) or not isinstance(data.get("errors"), list)):
        return f"a {status} named a field without the list of errors: {str(data)[:200]}"
    return None


def _request_of(case: Any) -> requests.PreparedRequest:
    """The request Schemathesis would send, without generated credentials."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    kwargs["headers"] = {k: v for k, v in kwargs.get("headers", {}).items() if k.lower() not in AUTH_HEADERS}
    kwargs.pop("cookies", None)
    kwargs.pop("timeout", None)
    kwargs.pop("allow_redirects", None)
    return requests.Request(**kwargs).prepare()


def case_send(*, case: Any, identity: Identity) -> tuple[Any, requests.PreparedRequest]:
    """Send one Schemathesis case through the identity's Django test client; (Schemathesis response, request)."""
    from schemathesis.core.transport import Response

    prepared = _request_of(case)
    path = prepared.path_url  # path and query, as sent
    content_type = prepared.headers.get("Content-Type", "application/octet-stream")
    extra = {k: v for k, v in prepared.headers.items() if k.lower() not in {"content-type", "content-length"}}
    body = prepared.body or b""
    answer = identity.client.generic(prepared.method, path, data=body, content_type=content_type,
                                     headers={**extra, **identity.headers})
    headers: dict[str, list[str]] = {}
    for name, value in answer.headers.items():
        headers.setdefault(name, []).append(value)
    response = Response(status_code=answer.status_code, headers=headers, content=answer.content, request=prepared,
                        elapsed=0.0, verify=False, message=getattr(answer, "reason_phrase", ""))
    return response, prepared


def _checks() -> list[Callable]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
            negative_data_rejection]


def case_check(*, case: Any, identity: Identity) -> tuple[int, dict[str, Any] | None]:
    """Send one case and judge its answer; (status, None) when it passed, else (status, a failure record)."""
    from schemathesis.core.failures import FailureGroup

    response, prepared = case_send(case=case, identity=identity)
    problems: list[str] = []
    try:
        case.validate_response(response, checks=_checks())
    except FailureGroup as group:
        problems += [f"{f.title}: {f.message}".strip()[:400] for f in group.exceptions
                     if not _accepted_on_purpose(failure=f, prepared=prepared, response=response)]
    except AssertionError as exc:
        problems.append(str(exc)[:400])
    content_type = (response.headers.get("content-type") or [""])[0]
    shape = error_shape_problem(status=response.status_code, content_type=content_type, body=response.content)
    if shape:
        problems.append(f"error shape: {shape}")
    if not problems:
        return response.status_code, None
    body = prepared.body.decode("utf-8", "replace") if isinstance(prepared.body, bytes) else prepared.body
    return response.status_code, {
        "identity": identity.name, "operation": f"{case.operation.method.upper()} {case.operation.path}",
        "request": f"{prepared.method} {prepared.path_url}", "body": (body or "")[:300],
        "status": response.status_code, "answer": response.content[:300].decode("utf-8", "replace"),
        "problems": problems,
    }


def _accepted_on_purpose(*, failure: Any, prepared: requests.PreparedRequest, response: Any) -> bool:
    """Whether an "invalid data accepted" finding is the API's documented behaviour rather than a bug.

    1. A form body: every value arrives as text, so a value drawn as `false` and sent as "false" is valid text.
    2. A 2xx whose JSON lists `errors`: bulk writes keep the good rows and name each refused one (items[0]: `id` ...).
    3. A query parameter sent empty: DRF reads `?state=` as absent, so the default applies.
    """
    if "rejected" not in failure.title.lower() and "accepted" not in failure.title.lower():
        return False
    if prepared.headers.get("Content-Type", "").split(";")[0] in ("multipart/form-data",
                                                                  "application/x-www-form-urlencoded"):
        return True
    try:
        answer = json.loads(response.content) if 200 <= response.status_code < 300 else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("errors"):
        return True
    named = re.search(r"parameter `([^`]+)` in query", failure.message)
    return bool(named) and re.search(rf"[?&]{re.escape(named.group(1))}=(&|$)", prepared.path_url) is not None


@contextmanager
def celery_held(report: HttpReport) -> Iterator[None]:
    """No task reaches a broker while fuzzing: a retrain or index rebuild the API queues is recorded, not run."""
    from celery import Celery
    from celery.result import AsyncResult
    from celery.utils import uuid

    def send_task(app: Celery, name: str, *args: object, **kwargs: object) -> AsyncResult:
        report.queued.append(name)
        return AsyncResult(str(kwargs.get("task_id") or uuid()), app=app)

    with mock.patch.object(Celery, "send_task", send_task):
        yield


class _PlanExhausted(Exception):
    """Too many draws were rejected for one plan (Hypothesis would try a thousand): move on."""


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence one logger's warnings (Django logs every 4xx; a campaign sends hundreds on purpose)."""
    import logging

    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def operation_cases(*, operation: Any, identity: Identity, n: int, seed: int, report: HttpReport,
                    known: dict[str, Any] | None) -> list[int]:
    """Fuzz one operation as one identity: about `n` cases, two thirds valid by the schema, one third invalid.

    1. For each generation mode (positive, negative), draw cases with Hypothesis (seeded, no shrinking, no
       example database: a campaign replays exactly).
    2. With `known` path parameters (objects that exist), half of the positive cases name them.
    3. Every case is sent and judged (case_check); the report counts and lists failures. Returns the statuses.
    """
    from schemathesis import GenerationMode

    statuses: list[int] = []
    plans: list[tuple[GenerationMode, dict[str, Any] | None, int]] = []
    positive = max(1, n - n // 3)
    if known:
        plans += [(GenerationMode.POSITIVE, known, max(1, positive // 2)),
                  (GenerationMode.POSITIVE, None, max(1, positive - positive // 2))]
    else:
        plans.append((GenerationMode.POSITIVE, None, positive))
    plans.append((GenerationMode.NEGATIVE, None, max(1, n - positive)))
    for index, (mode, path_parameters, count) in enumerate(plans):
        try:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
        except Exception:  # noqa: BLE001, S112 - an operation with nothing to negate has no negative strategy
            continue
        statuses += _plan_run(strategy=strategy, count=count, seed=seed * 1000 + index, identity=identity,
                              report=report)
    return statuses


def _plan_run(*, strategy: Any, count: int, seed: int, identity: Identity, report: HttpReport) -> list[int]:
    """Draw up to `count` cases from `strategy` (seeded, no shrinking, no example database), send and judge each."""
    from hypothesis import strategies as st

    statuses: list[int] = []
    attempts: list[int] = []

    @hypothesis_settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
                         suppress_health_check=list(HealthCheck), derandomize=False)
    @hypothesis_seed(seed)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        attempts.append(1)
        if len(attempts) > ATTEMPTS_PER_CASE * count:
            raise _PlanExhausted
        case = data.draw(strategy)
        status, failure = case_check(case=case, identity=identity)
        report.record(status=status, failure=failure)
        statuses.append(status)

    try:
        run()
    except (_PlanExhausted, Unsatisfiable, FailedHealthCheck):  # e.g. only a slug to negate: few draws fit
        pass
    except FlakyStrategyDefinition:  # how Hypothesis reports _PlanExhausted raised before the draw of a replay
        if len(attempts) <= ATTEMPTS_PER_CASE * count:
            raise
    return statuses


def world_create(*, identities: dict[str, Identity]) -> dict[str, dict[str, Any]]:
    """Objects for the fuzz to find, made through the API where it can make them; the path parameters naming them.

    1. The shop puts two items; a customer asks two questions (a conversation, a bot answer, maybe a gap); the
       analyst adds a ticker with a rule; an agent gets a canned answer.
    2. Rows no API creates (a scored headline, an alert, an ops alert) are written directly.
    3. Returns {path template: {parameter: value}} for the operations whose path names one of them.
    """
    from django.utils import timezone

    from apps.registry.models import OpsAlert
    from apps.sentiment.models import Alert, ScoredNews
    from apps.support.models import CannedResponse, Conversation, KnowledgeGap, Message
    from services.registry.retrain import retrain_schedules_ensure
    from services.registry.versions import task_ensure

    def post(who: str, path: str, body: object) -> dict:
        answer = identities[who].client.post(path, json.dumps(body), content_type="application/json",
                                             headers=identities[who].headers)
        if answer.status_code >= 300:
            raise RuntimeError(f"fuzz world: {path} answered {answer.status_code}: {answer.content[:300]!r}")
        return answer.json()

    post("shop", "/api/items", [{"id": "fuzz-1", "title": "Dome tent", "description": "camping tent", "price": 10.5},
                                {"id": "fuzz-2", "title": "Frying pan", "category": "kitchen"}])
    post("shop", "/api/events", {"event_id": "fuzz-e1", "user_id": "u1", "item_id": "fuzz-1", "type": "view"})
    chat = post("anonymous", "/api/support/messages", {"text": "How do I reset my password?"})
    post("anonymous", "/api/support/messages", {"conversation": chat["conversation"], "text": "and my refund?"})
    ticker = post("analyst", "/api/sentiment/tickers", {"symbol": "ACME", "name": "Acme Corp", "aliases": ["Acme"]})
    rule = post("analyst", "/api/sentiment/tickers/ACME/rules", {"kind": "zscore"})
    task_ensure(name="sentiment")
    task_ensure(name="intent")
    retrain_schedules_ensure()
    from django_celery_beat.models import PeriodicTask

    schedule = PeriodicTask.objects.filter(name="retrain sentiment").first()
    now = timezone.now()
    news = ScoredNews.objects.create(message_id="fuzz-news-1", source="fuzz", published_at=now, headline="Acme beats",
                                     tickers=[ticker["symbol"]], label="positive", p_positive=0.8, p_neutral=0.1,
                                     p_negative=0.1, score=0.7, model_version=1)
    alert = Alert.objects.create(rule_id=rule["id"], symbol="ACME", kind="zscore", value=3.0, threshold=2.0,
                                 message="fuzz", dedup_key="fuzz-alert-1", window_end=now)
    ops_alert = OpsAlert.objects.create(message="fuzz: retrain of sentiment failed")
    CannedResponse.objects.get_or_create(name="fuzz-hello", defaults={"text": "Hello {customer}"})
    conversation = Conversation.objects.get(token=chat["conversation"])
    message = Message.objects.filter(conversation=conversation).order_by("-pk").first()
    gap = KnowledgeGap.objects.first()
    known: dict[str, dict[str, Any]] = {
        "/api/items/{external_id}": {"external_id": "fuzz-1"},
        "/api/items/{external_id}/similar": {"external_id": "fuzz-1"},
        "/api/sentiment/alerts/{alert_id}/acknowledge": {"alert_id": alert.pk},
        "/api/sentiment/headlines/{news_id}/relabel": {"news_id": news.pk},
        "/api/sentiment/headlines/{news_id}/topic": {"news_id": news.pk},
        "/api/sentiment/tickers/{symbol}/rules": {"symbol": "ACME"},
        "/api/sentiment/tickers/{symbol}/rules/{rule_id}": {"symbol": "ACME", "rule_id": rule["id"]},
        "/api/registry/ops-alerts/{alert_id}/acknowledge": {"alert_id": ops_alert.pk},
        "/api/support/conversations/{token}/messages": {"token": chat["conversation"]},
        "/api/support/console/conversations/{id}": {"id": conversation.pk},
        "/api/support/console/conversations/{id}/{action}": {"id": conversation.pk},
        "/api/support/console/messages/{id}/wrong": {"id": message.pk},
        "/api/support/console/kbs/{name}/rebuild": {"name": "default"},
    }
    if gap is not None:
        known["/api/support/console/gaps/{id}/add"] = {"id": gap.pk}
    for path in ("", "/events", "/promote", "/retrain", "/retrain-runs", "/rollback", "/schedules", "/versions"):
        known[f"/api/registry/tasks/{{task}}{path}"] = {"task": "sentiment"}
    if schedule is not None:
        known["/api/registry/tasks/{task}/schedules/{schedule_id}"] = {"task": "sentiment", "schedule_id": schedule.pk}
    return known


def operation_probe(*, operation: Any, identity: Identity, known: dict[str, Any] | None, report: HttpReport) -> int:
    """One plain request (known objects, an empty JSON body): its status says whether the identity is let in.

    It is judged like every case (a refusal too must be schema-conformant and in the one error shape).
    """
    params = {name: (known or {}).get(name, "1") for name in _path_parameter_names(operation)}
    kwargs: dict[str, Any] = {"path_parameters": params}
    if operation.method.upper() in ("POST", "PUT", "PATCH"):
        kwargs.update(body={}, media_type="application/json")
    try:
        case = operation.Case(**kwargs)
    except Exception:  # noqa: BLE001 - an operation without a JSON body: send none
        case = operation.Case(path_parameters=params)
    status, failure = case_check(case=case, identity=identity)
    report.record(status=status, failure=failure)
    return status


def _path_parameter_names(operation: Any) -> list[str]:
    return re.findall(r"{([^}]+)}", operation.path)


def http_campaign(*, identities: dict[str, Identity], schema: Any, cases: int, seed: int,
                  known: dict[str, dict[str, Any]] | None = None) -> dict:
    """Fuzz every operation of `schema` as every identity let in, about `cases` generated requests; the report.

    1. Each identity sends one plain request per operation (operation_probe); one refused (401/403) goes no
       further on that operation.
    2. The identities let in share the operation's budget (cases / operations): valid cases naming known
       objects, valid cases with drawn path parameters, invalid cases.
    3. Celery tasks the API queues are recorded, never sent (celery_held): no fuzz case starts a real retrain.
    """
    report = HttpReport()
    operations = [result.ok() for result in schema.get_all_operations()]
    per_operation = max(3, cases // max(1, len(operations)))
    with celery_held(report), _quiet("django.request"):
        for op_index, operation in enumerate(operations):
            path_known = (known or {}).get(operation.path)
            admitted = [identity for identity in identities.values()
                        if operation_probe(operation=operation, identity=identity, known=path_known, report=report)
                        not in (401, 403)]
            for identity in admitted:
                operation_cases(operation=operation, identity=identity, n=max(3, per_operation // len(admitted)),
                                seed=seed * 7919 + op_index, report=report, known=path_known)
    return report.as_dict()
