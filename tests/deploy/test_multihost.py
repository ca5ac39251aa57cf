"""Two web hosts and one worker host on one machine, sharing PostgreSQL, Redis, Kafka and the registry folder.

Each "host" is a separate process started with the root Procfile's command (Daphne for web, a Celery worker with
the thread pool for the worker), with its own SUITE_VAR_DIR; what they share is exactly what deploy/README.md says
hosts share: DATABASE_URL (a database of its own on the test PostgreSQL server, made and dropped here), REDIS_URL
(a Redis database number of its own on the test Redis, so the suite's other Celery worker never takes these
hosts' tasks), KAFKA_BOOTSTRAP_SERVERS and SUITE_REGISTRY_DIR. Run by `make test` (deploy/test.sh exports a
PostgreSQL DATABASE_URL); on its own:

    deploy/test.sh tests/deploy/test_multihost.py -v

The checks go through the HTTP APIs only, and every "within seconds" is a wait_until deadline, never a timing.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
import requests

from tests.helpers import process_stop, wait_until

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 11  # the hosts' broker, cache and channel layer: apart from the suite's own worker on database 0
SETTLE_S = 20.0  # deadline for "within seconds": generous for a loaded 2-core CI machine, never a measured speed
START_S = 120.0  # deadline for a process to come up (torch import, migrations already done)
INTENT_V1 = {"bullish": "first_up", "bearish": "first_down", "neutral": "first_flat"}
INTENT_V2 = {"bullish": "second_up", "bearish": "second_down", "neutral": "second_flat"}
# Texts from the tiny tokenizer's vocabulary (tests/services/conftest.VOCAB): unknown words would all be [UNK],
# and two texts of [UNK]s embed alike.
BASE_ITEMS = [
    {"id": "mh-x1", "title": "item1 plan", "description": "company board new plan", "category": "plans"},
    {"id": "mh-x2", "title": "item2 shares", "description": "stock market quarter", "category": "plans"},
    {"id": "mh-x3", "title": "item3 year", "description": "ceo names board", "category": "plans"},
]
QUESTION = "ask3 ask7 board quarter plan"
METRICS_TOKEN = "multihost-metrics-token-0123456789"


# --- the hosts ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return f"({path.name}: no log)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"--- {path} (last {len(text)} lines)\n" + "\n".join(text)


class Hosts:
    """The three host processes, their environments and logs; web hosts are reached over HTTP with the API token."""

    def __init__(self, *, root: Path, env: dict[str, str], redis_url: str, database_url: str) -> None:
        self.root = root
        self.env = env  # shared by every host; each adds its own SUITE_VAR_DIR
        self.redis_url = redis_url
        self.database_url = database_url
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {"a": _free_port(), "b": _free_port()}
        self.token = ""

    def var_dir(self, name: str) -> Path:
        folder = self.root / f"host-{name}"
        folder.mkdir(exist_ok=True)
        return folder

    def log(self, name: str) -> Path:
        return self.var_dir(name) / "process.log"

    def host_env(self, name: str) -> dict[str, str]:
        return {**self.env, "SUITE_VAR_DIR": str(self.var_dir(name))}

    def manage(self, name: str, *args: str) -> dict:
        """`manage.py ARGS` in host `name`'s environment; the JSON object on its last line."""
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.host_env(name), capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, f"manage.py {' '.join(args)} on host {name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    def start_web(self, name: str) -> None:
        log = self.log(name).open("a")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.ports[name]), "config.asgi:application"],
            cwd=ROOT, env=self.host_env(name), stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def start_worker(self) -> None:
        log = self.log("worker").open("a")
        self.procs["worker"] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "inference,training,default", "--pool=threads",
             "--concurrency=4",  # the Procfile's worker with fewer threads (a 2-core CI machine) and a name of its own
             "-n", f"multihost-{uuid.uuid4().hex[:8]}@%h", "-l", "INFO"],
            cwd=ROOT, env=self.host_env("worker"), stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def wait_web(self, name: str) -> None:
        """Until /readyz answers 200: the host reaches the database, Redis, Kafka and the registry folder."""
        def ready() -> bool:
            try:
                return requests.get(self.url(name, "/readyz"), timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=START_S, proc=self.procs[name], interval=0.5,
                   message=lambda: f"web host {name} never became ready\n{self.logs()}")

    def wait_worker(self) -> None:
        from celery import Celery

        app = Celery("multihost-ping", broker=self.redis_url)
        try:
            wait_until(lambda: app.control.ping(timeout=1.0), timeout=START_S, proc=self.procs["worker"], interval=0,
                       message=lambda: f"the worker host never answered a ping\n{self.logs()}")
        finally:
            app.close()

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():  # all asked at once: their shutdowns overlap
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            process_stop(proc, timeout=15)

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def api(self, name: str, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}"}
        return requests.request(method, self.url(name, path), headers=headers, timeout=30, **kwargs)

    def customer(self, name: str, path: str, body: dict) -> dict:
        """A customer's POST to the support API (anonymous, as the widget sends it); the JSON answer."""
        response = requests.post(self.url(name, path), json=body, timeout=30)
        assert response.status_code in (200, 201), f"{path} on host {name}: {response.status_code} {response.text[:500]}"
        return response.json()

    def logs(self) -> str:
        return "\n".join(_tail(self.log(name)) for name in ("a", "b", "worker"))


def hosts_prepare(root: str) -> None:
    """What an operator does once per release, run in the worker host's environment (`python -c`, django set up).

    1. Migrate the shared database.
    2. Register the tiny base encoder (inside the shared registry folder) as the default.
    3. Train two `intent` adapters with different label names, and two `recommender` (pairs) adapters on different
       pairs: each task's v1 becomes champion, v2 waits as challenger.
    4. Issue an API token for the recommender, support and registry APIs; print {"token"} as the last line.
    """
    from io import StringIO

    from django.core.management import call_command

    from tests.services.conftest import pair_rows, sentiment_rows, tiny_base_write

    quiet = StringIO()  # the commands' own lines; this function prints only the token
    call_command("migrate", "--no-input", verbosity=0)
    base = tiny_base_write(Path(os.environ["SUITE_REGISTRY_DIR"]) / "bases" / "tiny-bert")
    call_command("registry_add_base", name="tiny-bert", path=str(base), default=True, stdout=quiet)
    texts, labels = sentiment_rows(60, seed=3)
    for version, names in enumerate((INTENT_V1, INTENT_V2), start=1):
        data = Path(root) / f"intent-v{version}.csv"
        with data.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows((text, names[label]) for text, label in zip(texts, labels))
        call_command("train_adapter", task="intent", data=str(data), epochs=2, stdout=quiet)
    for version in (1, 2):
        data = Path(root) / f"pairs-v{version}.csv"
        with data.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["query", "item"])
            writer.writerows(zip(*pair_rows(48, seed=version)))
        call_command("train_adapter", task="recommender", kind="pairs", data=str(data), text_col="query", label_col="item",
                     epochs=1, stdout=quiet)
    out = StringIO()
    call_command("api_token_create", client="multihost-shop", scope="recommender,support,registry", days=0, stdout=out)
    print(json.dumps({"token": json.loads(out.getvalue().strip().splitlines()[-1])["token"]}))


def _postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if urlparse(url).scheme not in {"postgres", "postgresql", "pgsql"}:
        pytest.skip("the multi-host test needs PostgreSQL (DATABASE_URL=postgres://...; `make test` sets it through "
                    "deploy/postgres.sh): SQLite is one host's file")
    return url


def _sql(url: str, query: str, *params: object, autocommit: bool = False) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=autocommit, connect_timeout=10) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Hosts]:
    """Web hosts a and b and the worker host, started once for the module, stopped (and their database dropped) after."""
    server_url = _postgres_url()
    db_name = f"multihost_{uuid.uuid4().hex[:10]}"
    _sql(server_url, f'CREATE DATABASE "{db_name}"', autocommit=True)
    database_url = urlunparse(urlparse(server_url)._replace(path=f"/{db_name}"))
    test_redis = urlparse(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    redis_url = urlunparse(test_redis._replace(path=f"/{REDIS_DB}"))
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # a previous run's queued tasks and cached values
    root = tmp_path_factory.mktemp("multihost")
    (root / "registry").mkdir()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "SUITE_REGISTRY_DIR": str(root / "registry"), "NEWS_TOPIC_PREFIX": f"multihost-{uuid.uuid4().hex[:8]}.news",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "SUITE_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "SUITE_VECTORS_EMBED": "worker",  # web hosts hand embedding to the worker host, as in production
           "SUITE_RESOLVE_TTL_S": "1",  # how soon a running process asks the registry for a new champion
           "SUITE_METRICS_TOKEN": METRICS_TOKEN,  # /metrics tells which encoder each host's vector index holds
           # Every customer call of the test comes from 127.0.0.1: lift the per-address throttles.
           "SUPPORT_CUSTOMER_RATE": "100000/minute", "SUPPORT_CONVERSATION_RATE": "100000/minute",
           # Answer only what a dense vector matches exactly (cosine 1): a host without the entry's vector (lexical
           # overlap alone gives at most 0.5) hands off instead, so "answers on B" means B holds the vector.
           "SUPPORT_CONFIDENCE_THRESHOLD": "0.99",
           "SUPPORT_INTENT_MIN_PROB": "0"}  # the tiny intent model is unsure of everything: never "out of scope"
    hosts = Hosts(root=root, env=env, redis_url=redis_url, database_url=database_url)
    failed_before = request.session.testsfailed
    try:
        prepared = subprocess.run(
            [sys.executable, "-c", "import django; django.setup(); from tests.deploy.test_multihost import hosts_prepare; "
             f"hosts_prepare({str(root)!r})"],
            cwd=ROOT, env=hosts.host_env("worker"), capture_output=True, text=True, timeout=600)
        assert prepared.returncode == 0, f"preparing the database failed:\n{prepared.stdout[-3000:]}\n{prepared.stderr[-5000:]}"
        hosts.token = json.loads(prepared.stdout.strip().splitlines()[-1])["token"]
        hosts.start_worker()
        hosts.start_web("a")
        hosts.start_web("b")
        hosts.wait_worker()
        hosts.wait_web("a")
        hosts.wait_web("b")
        yield hosts
    finally:
        hosts.stop_all()
        if request.session.testsfailed > failed_before:
            print(f"\nmulti-host logs ({root}):\n{hosts.logs()}")
        try:
            _sql(server_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)', autocommit=True)
        finally:
            redis.Redis.from_url(redis_url).flushdb()


# --- helpers for the checks --------------------------------------------------------------------------------

def _similar(hosts: Hosts, host: str, item: str) -> dict[str, dict] | None:
    """{id: recommendation} of GET /api/items/<item>/similar on `host`; None when the item is unknown there (404)."""
    response = hosts.api(host, "GET", f"/api/items/{item}/similar?k=50")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, f"similar({item}) on host {host}: {response.status_code} {response.text[:300]}"
    return {row["id"]: row for row in response.json()["items"]}


def _ask(hosts: Hosts, host: str, text: str) -> dict:
    return hosts.customer(host, "/api/support/messages", {"text": text})


def _index_encoders(hosts: Hosts, host: str, space: str) -> dict[str, float]:
    """{encoder: vectors} of `host`'s in-memory index of `space`, as its /metrics reports it."""
    response = requests.get(hosts.url(host, "/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert response.status_code == 200, f"/metrics on host {host}: {response.status_code} {response.text[:300]}"
    out = {}
    for labels, value in re.findall(r"^suite_vector_index_size\{([^}]*)\} (\S+)$", response.text, flags=re.M):
        named = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if named.get("space") == space:
            out[named["encoder"]] = float(value)
    return out


# --- the checks --------------------------------------------------------------------------------------------

def test_an_item_added_changed_and_deleted_on_host_a_is_recommended_accordingly_by_host_b(hosts: Hosts) -> None:
    response = hosts.api("a", "POST", "/api/items", json=BASE_ITEMS)
    assert response.status_code == 200, response.text
    others = {"mh-x2", "mh-x3"}
    wait_until(lambda: others <= set(_similar(hosts, "b", "mh-x1") or {}), timeout=SETTLE_S,
               message=lambda: f"host B never recommended the catalogue added on host A\n{hosts.logs()}")

    # Added on A → recommended by B (as similar to x1) and B can find its neighbours (B holds its vector).
    response = hosts.api("a", "PUT", "/api/items/mh-new", json={"title": "item5 record rally", "description": "shares soars",
                                                               "category": "plans"})
    assert response.status_code == 201, response.text
    wait_until(lambda: "mh-new" in (_similar(hosts, "b", "mh-x1") or {}) and _similar(hosts, "b", "mh-new"),
               timeout=SETTLE_S, message=lambda: f"host B never recommended the item added on host A\n{hosts.logs()}")
    old_score = _similar(hosts, "b", "mh-x1")["mh-new"]["score"]

    # Changed on A → B scores it with its new vector (the score A gives too), not the old one.
    response = hosts.api("a", "PUT", "/api/items/mh-new", json={"title": "item9 cuts loss", "description": "plunges slump downgrade",
                                                               "category": "plans"})
    assert response.status_code == 200, response.text

    def rescored() -> bool:
        on_a, on_b = _similar(hosts, "a", "mh-x1") or {}, _similar(hosts, "b", "mh-x1") or {}
        row_a, row_b = on_a.get("mh-new"), on_b.get("mh-new")
        return bool(row_a and row_b and row_b["title"] == "item9 cuts loss" and row_b["score"] != old_score
                    and row_a["score"] == row_b["score"])

    wait_until(rescored, timeout=SETTLE_S,
               message=lambda: f"host B never scored the changed item as host A does (old score {old_score}; "
                               f"A: {(_similar(hosts, 'a', 'mh-x1') or {}).get('mh-new')}, "
                               f"B: {(_similar(hosts, 'b', 'mh-x1') or {}).get('mh-new')})\n{hosts.logs()}")

    # Deleted on A → B no longer recommends it and no longer knows it.
    response = hosts.api("a", "DELETE", "/api/items/mh-new")
    assert response.status_code in (200, 204), f"DELETE /api/items/mh-new on host A: {response.status_code} {response.text[:300]}"
    wait_until(lambda: "mh-new" not in (_similar(hosts, "b", "mh-x1") or {"mh-new": 1}) and _similar(hosts, "b", "mh-new") is None,
               timeout=SETTLE_S, message=lambda: f"host B still recommends the item deleted on host A\n{hosts.logs()}")
    assert others <= set(_similar(hosts, "b", "mh-x1")), "deleting one item took others out of host B's recommendations"


def test_a_faq_added_and_edited_on_host_a_answers_on_host_b(hosts: Hosts) -> None:
    # The knowledge base is empty: host A hands the question off, and it becomes a knowledge gap.
    first = _ask(hosts, "a", QUESTION)
    assert first["handoff"] is True, first
    gaps = hosts.api("a", "GET", "/api/support/console/gaps").json()
    gap = next(g for g in gaps if g["question"] == QUESTION)
    answer_v1 = "Open the board plan page and choose the quarter."
    response = hosts.api("a", "POST", f"/api/support/console/gaps/{gap['id']}/add",
                         json={"question": QUESTION, "title": "Board plan", "answer": answer_v1, "confirmed": True})
    assert response.status_code == 201, response.text

    def answers(host: str, text: str) -> dict | None:
        reply = _ask(hosts, host, QUESTION)
        return reply if not reply["handoff"] and reply["reply"] == text else None

    on_b = wait_until(lambda: answers("b", answer_v1), timeout=SETTLE_S,
                      message=lambda: f"host B never answered with the FAQ added on host A "
                                      f"(last: {_ask(hosts, 'b', QUESTION)})\n{hosts.logs()}")
    assert on_b["citations"] and on_b["citations"][0]["title"] == "Board plan", on_b

    # Edited on A: the customer rates A's answer down, the agent rewrites the entry from that gap.
    on_a = wait_until(lambda: answers("a", answer_v1), timeout=SETTLE_S, message="host A does not answer its own FAQ")
    response = requests.post(hosts.url("a", "/api/support/feedback"), timeout=30,
                             json={"conversation": on_a["conversation"], "message": on_a["message"], "rating": "down"})
    assert response.status_code == 201, response.text
    gaps = hosts.api("a", "GET", "/api/support/console/gaps").json()
    gap = next(g for g in gaps if g["reason"] == "thumbs_down")
    answer_v2 = "Since the new plan: open the board page, then the quarter tab."
    response = hosts.api("a", "POST", f"/api/support/console/gaps/{gap['id']}/add",
                         json={"question": QUESTION, "title": "Board plan (quarter tab)", "answer": answer_v2, "confirmed": True})
    assert response.status_code == 201, response.text
    on_b = wait_until(lambda: answers("b", answer_v2), timeout=SETTLE_S,
                      message=lambda: f"host B never answered with the FAQ edited on host A "
                                      f"(last: {_ask(hosts, 'b', QUESTION)})\n{hosts.logs()}")
    assert on_b["citations"][0]["title"] == "Board plan (quarter tab)", on_b


def test_a_promotion_on_the_worker_host_is_served_by_both_web_hosts(hosts: Hosts) -> None:
    for host in ("a", "b"):  # the intent champion (v1) labels every customer message on each web host
        assert _ask(hosts, host, "soars record rally")["intent"] in INTENT_V1.values()
    promoted = hosts.manage("worker", "registry_promote", "--task", "intent", "--version", "2", "--force",
                            "--reason", "multi-host test", "--actor", "multihost-test")
    assert promoted["promoted"] is True, promoted
    for host in ("a", "b"):
        wait_until(lambda: _ask(hosts, host, "soars record rally")["intent"] in INTENT_V2.values(), timeout=SETTLE_S,
                   message=lambda: f"host {host} still serves the old intent champion\n{hosts.logs()}")
        detail = hosts.api(host, "GET", "/api/registry/tasks/intent").json()
        assert detail["champion"] == 2, detail


def test_a_recommender_promotion_on_the_worker_host_switches_both_web_hosts_to_the_new_vectors(hosts: Hosts) -> None:
    response = hosts.api("a", "POST", "/api/items", json=BASE_ITEMS)  # unchanged when the first check ran
    assert response.status_code == 200, response.text
    total = _sql(hosts.database_url, "SELECT count(*) FROM recommender_item")[0][0]
    # A process syncs its index when it searches: the similar calls above and below come before reading /metrics.
    wait_until(lambda: all(_similar(hosts, host, "mh-x1") and _index_encoders(hosts, host, "recommender") == {"recommender:v1": total}
                           for host in ("a", "b")), timeout=SETTLE_S,
               message=lambda: f"the web hosts' indexes are not on recommender:v1\n{hosts.logs()}")
    promoted = hosts.manage("worker", "registry_promote", "--task", "recommender", "--version", "2", "--force",
                            "--reason", "multi-host test", "--actor", "multihost-test")
    assert promoted["promoted"] is True, promoted

    def switched() -> bool:
        """Both hosts search the new encoder's vectors of every item, none of the old one's, and score alike.

        (Not "scores differ from v1's": two adapters of one epoch on a tiny base may round to the same 5 decimals.)
        """
        on_a, on_b = _similar(hosts, "a", "mh-x1"), _similar(hosts, "b", "mh-x1")
        if any(_index_encoders(hosts, host, "recommender") != {"recommender:v2": total} for host in ("a", "b")):
            return False
        scores = {item: row["score"] for item, row in (on_b or {}).items()}
        return bool(on_a and on_b and scores == {item: row["score"] for item, row in on_a.items()})

    wait_until(switched, timeout=SETTLE_S * 2,
               message=lambda: f"the web hosts did not both switch to recommender:v2 (A: {_index_encoders(hosts, 'a', 'recommender')}, "
                               f"B: {_index_encoders(hosts, 'b', 'recommender')})\n{hosts.logs()}")


def test_killing_host_a_mid_write_leaves_host_b_serving_and_nothing_half_written(hosts: Hosts) -> None:
    chunk = 200
    acknowledged: list[int] = []
    sending = threading.Event()
    stop = threading.Event()

    def write_stream() -> None:
        """Bulk imports of `chunk` items each, one after another, until host A dies."""
        n = 0
        while not stop.is_set():
            rows = [{"id": f"mh-bulk-{n}-{i}", "title": f"item{i % 12} plan", "description": "board quarter shares",
                     "category": "bulk"} for i in range(chunk)]
            sending.set()
            try:
                response = hosts.api("a", "POST", "/api/items", json=rows)
            except requests.RequestException:
                return  # host A was killed during this request
            if response.status_code == 200:
                acknowledged.append(n)
            n += 1

    writer = threading.Thread(target=write_stream, daemon=True)
    writer.start()
    try:
        wait_until(lambda: len(acknowledged) >= 2, timeout=SETTLE_S * 3, proc=hosts.procs["a"],
                   message=lambda: f"host A acknowledged no bulk import\n{hosts.logs()}")
        sending.clear()
        wait_until(sending.is_set, timeout=SETTLE_S, message="the writer sent no further import")
        time.sleep(0.05)  # into the request: parsing, the upsert transaction or the embedding hand-off
        hosts.kill("a")
    finally:
        stop.set()
        writer.join(60)

    # Nothing half-written: every import is all there or not at all, and every acknowledged one is there.
    rows = _sql(hosts.database_url, "SELECT external_id FROM recommender_item WHERE category = 'bulk'")
    per_chunk: dict[int, int] = {}
    for (external_id,) in rows:
        n = int(re.fullmatch(r"mh-bulk-(\d+)-\d+", external_id).group(1))
        per_chunk[n] = per_chunk.get(n, 0) + 1
    assert all(count == chunk for count in per_chunk.values()), f"an import was half-written: {per_chunk}"
    assert set(acknowledged) <= set(per_chunk), f"acknowledged imports missing: {set(acknowledged) - set(per_chunk)}"
    tables = {name for (name,) in _sql(hosts.database_url, "SELECT table_name FROM information_schema.tables")}
    if {"vectors_embedding", "vectors_vectorspace"} <= tables:  # the shared-vectors store: no vector without its item
        orphans = _sql(hosts.database_url, """
            SELECT e.key FROM vectors_embedding e JOIN vectors_vectorspace s ON s.id = e.space_id
            WHERE s.name = 'recommender' AND e.vector IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM recommender_item i WHERE i.id = e.key)""")
        assert not orphans, f"vectors without their item: {orphans[:10]}"

    # Host B serves, reports what the database holds, and recommends the acknowledged imports.
    total = _sql(hosts.database_url, "SELECT count(*) FROM recommender_item")[0][0]
    health = hosts.api("b", "GET", "/api/recommender/health").json()
    assert health["ready"] is True and f"{total} items" in health["detail"], (total, health)
    last = f"mh-bulk-{acknowledged[-1]}-{chunk - 1}"
    wait_until(lambda: _similar(hosts, "b", last), timeout=SETTLE_S,
               message=lambda: f"host B never recommended from the last acknowledged import\n{hosts.logs()}")

    # Host A restarted serves again: it reads what B wrote and B sees what it writes.
    hosts.start_web("a")
    hosts.wait_web("a")
    assert _similar(hosts, "a", last) is not None
    response = hosts.api("b", "PUT", "/api/items/mh-after", json={"title": "item4 record", "category": "plans"})
    assert response.status_code == 201, response.text
    wait_until(lambda: _similar(hosts, "a", "mh-after"), timeout=SETTLE_S,
               message=lambda: f"restarted host A never recommended around an item written on host B\n{hosts.logs()}")
    health = hosts.api("a", "GET", "/api/recommender/health").json()
    assert f"{total + 1} items" in health["detail"], health
