"""Recommender benchmark: GET /api/recommendations through the real HTTP stack under concurrent load vs one raw FAISS search.

    python -m pipelines.bench recommender [--json] [--items 100000] [--users 10000] [--requests 2000] [--concurrency 4] [--servers 2]

Runs on its own var/ folder (var/bench-recommender). A synthetic catalogue and event log are created once (reused on
later runs of the same sizes). The item vectors are random unit vectors stored straight into the shared vector store
(embedding 100k texts on a CPU would take most of an hour and measures the encoder, not serving); past
SUPPORT_IVF_THRESHOLD an IVF snapshot is trained once, as a worker would, and every server loads it. The server is the real ASGI server
(daphne), `servers` processes accepting on one shared socket (one Django process runs sync views one at a time), DEBUG off; clients hold keep-alive connections and ask for k=10 for random users (10% of
them unknown: cold start). Last line: {"items", "users", "p50_ms", "p95_ms", "p99_ms", "rps", "raw_faiss_p99_ms", ...}.
Where the servers' time goes comes from each answer's Server-Timing header: "server_sections_ms" (mean ms per
section), "server_app_p50_ms"/"server_app_p99_ms" (the view's own time), "ranker_share_server" (the learned ranker's
share of the view's time) and "ranker_share_latency" (of the latency the clients saw); "ranker_share" is the same share
measured in this process beforehand. "impressions": "redis", or "database" when REDIS_URL does not answer (every
request then writes a row: start Redis, as production has it, for comparable figures).
"""
from __future__ import annotations

import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = [f"category-{i}" for i in range(50)]
EVENTS_PER_USER = 5


def catalogue_ensure(*, n_items: int, n_users: int, quiet: bool) -> None:
    """Items, events and a random-vector index of these sizes (created when the stored ones differ)."""
    from django.db import transaction
    from django.utils import timezone

    from apps.recommender.models import Event, Item
    from services.recommender.vectors import SPACE, encoder_tag, index_install
    from services.vectors import snapshot_build, space_drop, space_ensure, space_status

    tag = encoder_tag()
    space_ensure(name=SPACE)
    status = space_status(space=SPACE)
    fresh = (Item.objects.count() == n_items and Event.objects.values("user_id").distinct().count() == n_users
             and status["encoder"] == tag.name and status["count"] == n_items and status["missing"] == 0)
    if fresh:
        return
    started = time.monotonic()
    rng = np.random.default_rng(0)
    with transaction.atomic():
        Event.objects.all().delete()
        Item.objects.all().delete()
        Item.objects.bulk_create([Item(external_id=f"item-{i}", title=f"Product {i}", description=f"Synthetic product {i}",
                                       category=CATEGORIES[i % len(CATEGORIES)], price=float(i % 200), in_stock=i % 10 != 0,
                                       content_hash="-", text_hash="-") for i in range(n_items)], batch_size=5000)
    pks = np.array(list(Item.objects.order_by("pk").values_list("pk", flat=True)), dtype=np.int64)
    now = timezone.now()
    popular = rng.zipf(1.3, size=n_users * EVENTS_PER_USER) % n_items  # a long tail, as real shops have
    kinds = ["view", "view", "click", "cart", "purchase"]
    with transaction.atomic():
        Event.objects.bulk_create([
            Event(event_id=f"e{j}", user_id=f"u{j // EVENTS_PER_USER}", item_external_id=f"item-{int(popular[j])}",
                  item_id=int(pks[int(popular[j])]), type=kinds[j % 5], timestamp=now - timedelta(hours=int(j % 150)))
            for j in range(n_users * EVENTS_PER_USER)], batch_size=5000)
    vectors = rng.standard_normal((n_items, tag.dim), dtype=np.float32)  # the default base's width (384)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    space_drop(space=SPACE)  # the old catalogue's vectors (and snapshots) go with it
    space_ensure(name=SPACE)
    index_install(pks=pks, vectors=vectors, text_hashes=["-"] * n_items)  # into the shared store, as a worker would
    snapshot_build(space=SPACE)  # past SUPPORT_IVF_THRESHOLD: IVF trained once here, every server loads it
    if not quiet:
        print(f"catalogue: {n_items} items, {n_users} users in {time.monotonic() - started:.0f} s", file=sys.stderr)


def token_ensure() -> str:
    """A fresh token of the bench's client (tokens are stored hashed: rotating is how to hold one in clear)."""
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("api_token_create", client="bench-shop", rotate=True, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])["token"]


SERVER_KINDS = ("daphne", "uvicorn")


def server_command(kind: str, fd: int) -> list[str]:
    """An ASGI server accepting on an inherited socket: daphne is production's (deploy/suite.sh's `web`); uvicorn
    (uvloop + httptools, not a requirement of the suite: `pip install uvicorn[standard]`) is there to compare with.
    Measured alternating with daphne on the 2-core machine, uvicorn gave fewer requests a second, not more (PERFORMANCE)."""
    if kind == "uvicorn":
        import importlib.util

        if importlib.util.find_spec("uvicorn") is None:
            raise ValueError("--server uvicorn: uvicorn is not installed in this environment (pip install 'uvicorn[standard]')")
        return [sys.executable, "-m", "uvicorn", "--fd", str(fd), "--loop", "uvloop", "--http", "httptools",
                "--ws", "websockets", "--lifespan", "off", "--no-access-log", "--log-level", "warning", "config.asgi:application"]
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "--fd", str(fd), "config.asgi:application"]
    raise ValueError(f"unknown ASGI server {kind!r} (one of {', '.join(SERVER_KINDS)})")


def servers_start(*, processes: int, kind: str = "daphne") -> tuple[list[subprocess.Popen], int, socket.socket]:
    """`processes` ASGI servers of `kind` accepting on one shared listening socket (as under systemd socket activation)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    port = listener.getsockname()[1]
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SETTINGS_MODULE": "config.settings"}
    fd = listener.fileno()
    servers = [subprocess.Popen(server_command(kind, fd), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(fd,)) for _ in range(processes)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for server in servers:
            if server.poll() is not None:
                raise RuntimeError(f"{kind} exited: {server.stderr.read().decode()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/recommender/health")
            connection.getresponse().read()
            return servers, port, listener
        except OSError:
            time.sleep(0.3)
    servers_stop(servers, listener)
    raise RuntimeError(f"{kind} did not start within 60 s")


def servers_stop(servers: list[subprocess.Popen], listener: socket.socket) -> None:
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    listener.close()


def server_timing(header: str | None) -> dict[str, float]:
    """{section: ms} of a Server-Timing header ("ranker;dur=0.512, app;dur=6.1"); {} without one."""
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                try:
                    out[name] = out.get(name, 0.0) + float(value)
                except ValueError:
                    pass
    return out


def load_run(*, port: int, token: str, n_users: int, n_requests: int, concurrency: int, seed: int = 0,
             timings: list[dict[str, float]] | None = None) -> tuple[list[float], float, int]:
    """(latencies in ms, wall seconds, errors) of n_requests GETs from `concurrency` keep-alive clients; each answer's
    Server-Timing sections (ms) are appended to `timings` when given."""
    rng = random.Random(seed)
    paths = [f"/api/recommendations?user={'u' if rng.random() < 0.9 else 'nobody-'}{rng.randrange(n_users)}&k=10"
             for _ in range(n_requests)]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    cursor = iter(paths)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Host": "127.0.0.1"}
        while True:
            with lock:
                path = next(cursor, None)
            if path is None:
                break
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += response.status != 200
                if timings is not None:
                    timings.append(server_timing(response.getheader("Server-Timing")))
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - started, errors[0]


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def raw_faiss_p99(*, n: int = 1000) -> float:
    """p99 of one FAISS search (k as the service asks for a typical user) on the same index, in this process."""
    from services.recommender.vectors import index_get

    index = index_get()
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((n, index.tag.dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    times = []
    for q in queries:
        started = time.perf_counter()
        index.search(vectors=q[None, :], k=65)
        times.append((time.perf_counter() - started) * 1000)
    return _pct(times, 99)


def serving_profile(*, n_users: int, n: int = 300, seed: int = 7) -> dict[str, float]:
    """In this process: p50/p99 of recommendations_for and the learned ranker's share of its time (scores + reasons)."""
    from services.recommender import recommend, sources

    snapshot = sources.behaviour_current()
    ranker = snapshot.ranker if snapshot is not None else None
    spent = [0.0]
    if ranker is not None:
        for name in ("scores", "reasons"):
            real = getattr(ranker, name)

            def timed(features: np.ndarray, _real: Any = real) -> Any:
                started = time.perf_counter()
                try:
                    return _real(features)
                finally:
                    spent[0] += time.perf_counter() - started

            setattr(ranker, name, timed)
    rng = random.Random(seed)
    times = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            recommend.recommendations_for(user=f"u{rng.randrange(n_users)}", k=10)
            times.append(time.perf_counter() - started)
    finally:
        if ranker is not None:
            for name in ("scores", "reasons"):
                delattr(ranker, name)
    return {"inprocess_p50_ms": _pct([t * 1000 for t in times], 50), "inprocess_p99_ms": _pct([t * 1000 for t in times], 99),
            "ranker_share": round(spent[0] / sum(times), 3) if times else 0.0, "ranker": ranker is not None}


def server_figures(timings: list[dict[str, float]], latencies: list[float]) -> dict[str, Any]:
    """The servers' own figures from the answers' Server-Timing headers: mean ms per section, the view's ("app") p50/p99,
    and the ranker's share of the view's time and of the latency the clients saw."""
    names = sorted({name for t in timings for name in t})
    app = [t.get("app", 0.0) for t in timings]
    ranker = sum(t.get("ranker", 0.0) for t in timings)
    return {"server_sections_ms": {name: round(sum(t.get(name, 0.0) for t in timings) / max(len(timings), 1), 3) for name in names},
            "server_app_p50_ms": _pct(app, 50) if app else None, "server_app_p99_ms": _pct(app, 99) if app else None,
            "ranker_share_server": round(ranker / sum(app), 3) if sum(app) else 0.0,
            "ranker_share_latency": round(ranker / sum(latencies), 3) if sum(latencies) else 0.0}


def impressions_target() -> str:
    """Where the servers queue impressions: "redis", or "database" when REDIS_URL does not answer (then every request
    writes a row, which costs more than the ranking on SQLite: start Redis for figures comparable with production)."""
    try:
        from services.kafka_lag import redis_client

        redis_client().ping()
        return "redis"
    except Exception:  # noqa: BLE001 - any failure means the fallback path
        return "database"


def recommender_bench(*, n_items: int = 100_000, n_users: int = 10_000, n_requests: int = 2000, concurrency: int = 4,
                      servers: int = 2, quiet: bool = False, ranker: bool = True,
                      server_kinds: tuple[str, ...] = ("daphne",), rounds: int = 2) -> dict[str, Any]:
    for kind in server_kinds:
        server_command(kind, 0)  # an unknown server is refused before any work
    catalogue_ensure(n_items=n_items, n_users=n_users, quiet=quiet)
    refresh: dict[str, Any] = {}
    if ranker:  # what the worker's beat does: fit the sources and the ranker, publish them for the servers
        from services.recommender.sources import behaviour_refresh

        started = time.monotonic()
        refresh = behaviour_refresh()
        refresh["seconds"] = round(time.monotonic() - started, 1)
    profile = serving_profile(n_users=n_users)
    token = token_ensure()
    raw = raw_faiss_p99()
    # Each server kind serves n_requests in all, in `rounds` turns alternating with the other kinds (one kind only:
    # one turn), so every kind sees the same machine load; each turn starts fresh processes and warms them up.
    rounds = max(1, rounds if len(server_kinds) > 1 else 1)
    per_kind: dict[str, dict[str, Any]] = {kind: {"latencies": [], "wall": 0.0, "errors": 0, "timings": []} for kind in server_kinds}
    for turn in range(rounds):
        for kind in server_kinds:
            share = n_requests // rounds + (1 if turn < n_requests % rounds else 0)
            processes, port, listener = servers_start(processes=servers, kind=kind)
            try:  # warm up: every process loads the index on its first request
                load_run(port=port, token=token, n_users=n_users, n_requests=min(50 * servers, n_requests), concurrency=servers,
                         seed=99 + turn)
                latencies, wall, errors = load_run(port=port, token=token, n_users=n_users, n_requests=share,
                                                   concurrency=concurrency, timings=per_kind[kind]["timings"], seed=turn)
            finally:
                servers_stop(processes, listener)
            per_kind[kind]["latencies"] += latencies
            per_kind[kind]["wall"] += wall
            per_kind[kind]["errors"] += errors
    first = per_kind[server_kinds[0]]
    latencies, wall, errors, timings = first["latencies"], first["wall"], first["errors"], first["timings"]
    from services.vectors.index import ivf_threshold

    result = {"items": n_items, "users": n_users, "requests": n_requests, "concurrency": concurrency, "errors": errors,
              "p50_ms": _pct(latencies, 50), "p95_ms": _pct(latencies, 95), "p99_ms": _pct(latencies, 99),
              "mean_ms": round(statistics.fmean(latencies), 2), "rps": round(len(latencies) / wall, 1),
              "raw_faiss_p99_ms": raw, "index": "ivf" if n_items >= ivf_threshold() else "flat", "server": f"{server_kinds[0]} x{servers} (one shared socket)",
              "vectors": "random unit vectors, dim 384", **profile,
              "refresh_s": refresh.get("seconds"), "ranker_active": refresh.get("ranker"), **server_figures(timings, latencies),
              "impressions": impressions_target()}
    if len(server_kinds) > 1:  # the same requests through each server kind, alternating turns in this run
        result["servers_compared"] = {kind: {"p50_ms": _pct(v["latencies"], 50), "p95_ms": _pct(v["latencies"], 95),
                                             "p99_ms": _pct(v["latencies"], 99), "rps": round(len(v["latencies"]) / v["wall"], 1),
                                             "errors": v["errors"], "server_app_p99_ms": server_figures(v["timings"], v["latencies"]).get("server_app_p99_ms")}
                                      for kind, v in per_kind.items()}
        result["rounds"] = rounds
    if not quiet:
        print(f"GET /api/recommendations: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, {result['rps']} req/s "
              f"({concurrency} clients); raw FAISS p99 {raw} ms; ranker {'on' if profile['ranker'] else 'off'}, "
              f"{100 * profile['ranker_share']:.0f}% of a request's time in process", file=sys.stderr)
        print(f"server side (Server-Timing, mean ms): {result['server_sections_ms']}; the ranker "
              f"{100 * result['ranker_share_server']:.1f}% of the view's time, {100 * result['ranker_share_latency']:.1f}% "
              f"of the latency clients saw; impressions to {result['impressions']}", file=sys.stderr)
    return result
