"""Reliability benchmark: hostile and good messages through the real broker while consumers are killed.

    python -m pipelines.bench chaos [--good 300] [--bad 150] [--kills 3] [--seed 7] [--consumers 2]
                                    [--fuzz-cases 200] [--no-broker-restart]

1. Private topics `chaos-<run>.news.*` (3 partitions) on the broker of KAFKA_BOOTSTRAP_SERVERS, and
   `--consumers` consumer processes in one group (`python -m pipelines.bench_chaos consume`: the real
   `news_consume` with a cue-word stand-in for the model, so a restart costs seconds, not a model load;
   a headline holding "[model-poison]" makes that stand-in raise, exercising the model retries).
2. The good and hostile messages (every poison kind of the consumer's tests, rotated by the seed) are
   shuffled and produced round-robin over the partitions in `--kills` + 2 chunks. After each of the first
   `--kills` chunks, once it is being stored, a consumer that has stored a batch since it started is
   SIGKILLed and started again; halfway the broker is stopped
   and started (deploy/kafka.sh, on the port of KAFKA_BOOTSTRAP_SERVERS and its KAFKA_VAR: only a broker
   that script runs can be restarted; `--no-broker-restart` skips it). A consumer that exits on its own
   counts as a crash and is started again.
3. When every good message is stored and every hostile one is in the DLQ (or the time runs out), the
   counts are read from the database and the DLQ topic; `duplicated` also compares the run's ticker
   aggregates with its rows. `fuzz_http_cases`/`http_5xx` come from pipelines.fuzz.fuzz_http.
The last line printed is one JSON object: {"good_sent", "good_stored_once", "bad_sent", "bad_in_dlq", "lost",
"duplicated", "consumer_crashes", "fuzz_http_cases", "http_5xx", ...}.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL_POISON = "[model-poison]"
UP = {"soars", "beats", "upgrade", "record", "rally"}
DOWN = {"plunges", "misses", "downgrade", "loss", "slump"}


def cue_classify(texts: list[str]) -> Any:
    """A deterministic stand-in for the model (cue words); raises on MODEL_POISON like a model that breaks on a text."""
    import numpy as np

    from services.ml.runtime import ClassifyOutput

    if any(MODEL_POISON in t for t in texts):
        raise RuntimeError("the model failed on this input (chaos benchmark's poison)")
    names = ["negative", "positive", "neutral"]
    probs = []
    for text in texts:
        words = set(text.lower().split())
        up, down = len(words & UP), len(words & DOWN)
        probs.append([0.8, 0.1, 0.1] if down > up else [0.1, 0.8, 0.1] if up > down else [0.1, 0.1, 0.8])
    arr = np.array(probs, dtype=np.float32)
    return ClassifyOutput([names[i] for i in arr.argmax(axis=1)], arr, names, 1)


def hostile_values(n: int, *, seed: int) -> list[bytes | None]:
    """`n` values no consumer may store: each poison kind in turn, with seeded variations."""
    rng = random.Random(seed)

    def msg(**fields: Any) -> dict[str, Any]:
        return {"id": f"bad-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}", "source": "chaos",
                "published_at": "2026-01-05T10:00:00Z", "headline": "$ACME beats", **fields}

    def dumped(value: Any) -> bytes:
        return json.dumps(value).encode()

    def nested(depth: int) -> bytes:  # deeper than the JSON parser follows
        return b'{"tickers": ' + b"[" * depth + b"]" * depth + b"}"

    kinds = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))) + b"\xff",  # not UTF-8
        lambda: b'{"id": "x", "headline": ' + b'"unterminated',  # not JSON
        lambda: dumped(msg(published_at=float("nan"))),
        lambda: dumped(msg(score=float("inf"))),
        lambda: dumped(msg(published_at=rng.choice([1e20, -1e20, 1e300]))),
        lambda: b'{"id": ' + b"9" * rng.randint(4301, 8000) + b', "source": "chaos", "headline": "x"}',
        lambda: nested(rng.randint(2000, 60000)),
        lambda: dumped(rng.choice([[1, 2], "text", 42, None, True])),  # not an object
        lambda: dumped(msg(tickers=["T" * rng.randint(21, 400)])),
        lambda: dumped(msg(headline="nul \u0000 byte")),
        lambda: dumped(msg(headline="lone \ud800 surrogate")),
        lambda: dumped(msg(id="i" * rng.randint(201, 5000))),
        lambda: dumped(msg(source="s" * rng.randint(101, 5000))),
        lambda: dumped(msg(url="https://e.com/" + "u" * rng.randint(1000, 5000))),
        lambda: dumped(msg(published_at="1969-07-20T20:17:00Z")),
        lambda: dumped(msg(headline=rng.choice(["", "   ", None, 5.5, ["a"], {"b": 1}]))),
        lambda: b"",
        lambda: None,  # a tombstone
        lambda: dumped(msg(headline=f"$ACME beats {MODEL_POISON}")),
        lambda: dumped(msg(tickers=["A"] * 60)),
    ]
    start = rng.randrange(len(kinds))
    return [kinds[(start + i) % len(kinds)]() for i in range(n)]


def good_values(n: int, *, run: str, symbol: str, seed: int) -> list[dict[str, Any]]:
    """`n` well-formed headlines about `symbol`; one in 20 dated in 2100 (clamped, still stored)."""
    rng = random.Random(seed + 1)
    now = datetime.now(timezone.utc)
    out = []
    for i in range(n):
        at = "2100-01-01T00:00:00Z" if i % 20 == 7 else (now - timedelta(seconds=rng.randint(0, 3600))).isoformat()
        cue = rng.choice(["beats", "plunges", "holds", "record", "slump", "meets"])
        out.append({"id": f"chaos-{run}-g{i}", "source": "chaos", "published_at": at,
                    "headline": f"${symbol} {cue} item {i} ünïcødé ✓", "tickers": [symbol]})
    return out


def _database_env() -> dict[str, str]:
    """DATABASE_URL of the database this process uses, so the consumer processes write to the same one."""
    from urllib.parse import quote

    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return {"DATABASE_URL": f"sqlite:///{s['NAME']}"}
    auth = f"{quote(s.get('USER') or '')}:{quote(s.get('PASSWORD') or '')}@" if s.get("USER") else ""
    return {"DATABASE_URL": f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"}


class Consumers:
    """The consumer processes: started, SIGKILLed and restarted by the benchmark; one that dies unasked is a crash."""

    def __init__(self, *, n: int, prefix: str, group: str, log_dir: Path) -> None:
        self.prefix, self.group, self.log_dir = prefix, group, log_dir
        self.env = {**os.environ, **_database_env(), "NEWS_MODEL_RETRY_BACKOFF_S": "0.1", "PYTHONUNBUFFERED": "1",
                    "DJANGO_LOG_LEVEL": "INFO"}  # its "batch of" lines tell which consumers are working
        self.logs: dict[int, Path] = {}
        self.procs: list[subprocess.Popen] = [self._start(i) for i in range(n)]
        self.crashes: list[str] = []
        self.started = n

    def _start(self, slot: int) -> subprocess.Popen:
        self.logs[slot] = self.log_dir / f"consumer-{slot}-{time.monotonic_ns()}.log"
        with open(self.logs[slot], "w") as log:  # the child keeps its own descriptor
            return subprocess.Popen([sys.executable, "-m", "pipelines.bench_chaos", "consume", "--prefix", self.prefix,
                                     "--group", self.group], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def _last_line(self, slot: int) -> str:
        lines = self.logs[slot].read_text(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else ""

    def supervise(self) -> None:
        """Restart any consumer that exited without being asked (and count it)."""
        for slot, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.crashes.append(f"consumer {slot} exited with {proc.returncode}: {self._last_line(slot)} "
                                    f"({self.logs[slot]})")
                self.procs[slot] = self._start(slot)
                self.started += 1

    def working(self) -> list[int]:
        """Slots whose current process has stored a batch since it started (it holds partitions: mid-stream)."""
        return [slot for slot in range(len(self.procs)) if "batch of" in self.logs[slot].read_text(errors="replace")]

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL a consumer that is working (any, when none has a batch yet) and start it again."""
        slot = rng.choice(self.working() or list(range(len(self.procs))))
        self.procs[slot].send_signal(signal.SIGKILL)
        self.procs[slot].wait()
        self.procs[slot] = self._start(slot)
        self.started += 1

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for slot, proc in enumerate(self.procs):
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code != 0:
                self.crashes.append(f"consumer {slot} exited with {code} when stopped: {self._last_line(slot)}")


def broker_restart() -> None:
    """Stop and start the broker of KAFKA_BOOTSTRAP_SERVERS with deploy/kafka.sh (it must be one the script runs)."""
    from django.conf import settings

    from services.errors import SuiteError

    port = settings.KAFKA_BOOTSTRAP_SERVERS.split(",")[0].rsplit(":", 1)[1]
    env = {**os.environ, "KAFKA_PORT": port}
    script = str(ROOT / "deploy" / "kafka.sh")
    if subprocess.run([script, "status"], env=env, capture_output=True).returncode != 0:
        raise SuiteError(f"The broker on port {port} is not run by deploy/kafka.sh with KAFKA_VAR="
                         f"{env.get('KAFKA_VAR', f'var/kafka-{port}')}; set KAFKA_VAR or pass --no-broker-restart.",
                         field="broker")
    subprocess.run([script, "stop"], env=env, check=True, capture_output=True)
    time.sleep(2)
    subprocess.run([script, "start"], env=env, check=True, capture_output=True)


def _dlq_offsets(topic: str, raw_topic: str) -> list[tuple[int, int]]:
    """(partition, offset) of every dead letter of `raw_topic`, copies included (read to the end, no group)."""
    from kafka import KafkaConsumer, TopicPartition

    from services.kafka_config import kafka_client_options

    consumer = KafkaConsumer(**kafka_client_options(), enable_auto_commit=False, request_timeout_ms=10000)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[tuple[int, int]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    value = json.loads(r.value)
                    if value.get("topic") == raw_topic:
                        out.append((value["partition"], value["offset"]))
        return out
    finally:
        consumer.close()


def chaos_bench(*, good: int = 300, bad: int = 150, kills: int = 3, seed: int = 7, consumers: int = 2,
                fuzz_cases: int = 200, restart_broker: bool = True, timeout_s: float = 600,
                quiet: bool = False) -> dict[str, Any]:
    from kafka import KafkaProducer

    from apps.sentiment.models import Bucket, NewsTicker, ScoredNews
    from services.kafka_config import kafka_client_options
    from services.sentiment.bus import Topics, kafka_require, topics_ensure

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    kafka_require()
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    symbol = f"X{run.upper()}"  # this run's own ticker: its aggregates count this run's rows only
    topics = Topics.named(f"chaos-{run}.news")
    topics_ensure(topics=topics, partitions=3)
    goods = good_values(good, run=run, symbol=symbol, seed=seed)
    values: list[tuple[str, Any]] = [("good", json.dumps(g).encode()) for g in goods]
    values += [("bad", v) for v in hostile_values(bad, seed=seed)]
    rng.shuffle(values)
    log_dir = Path(os.environ.get("SUITE_VAR_DIR", ROOT / "var")) / "bench-chaos-logs" / run
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pool = Consumers(n=consumers, prefix=f"chaos-{run}.news", group=f"chaos-{run}", log_dir=log_dir)
    producer = KafkaProducer(**kafka_client_options(), acks="all", retries=10, max_request_size=2_000_000)
    good_ids = [g["id"] for g in goods]
    bad_at: set[tuple[int, int]] = set()
    good_at: set[tuple[int, int]] = set()
    n_chunks = kills + 2
    chunks = [values[i::n_chunks] for i in range(n_chunks)]
    restarts = 0

    def stored() -> int:
        return ScoredNews.objects.filter(message_id__in=good_ids).count()

    try:
        for index, chunk in enumerate(chunks):
            before = stored()
            # Round-robin over the 3 partitions (one key would put everything on one partition, one consumer).
            futures = [(kind, producer.send(topics.raw, key=b"chaos", value=value, partition=n % 3))
                       for n, (kind, value) in enumerate(chunk)]
            producer.flush(timeout=60)
            for kind, future in futures:
                meta = future.get(timeout=60)
                (good_at if kind == "good" else bad_at).add((meta.partition, meta.offset))
            if index < kills:  # kill while this chunk is being stored
                deadline = time.monotonic() + 120
                while (stored() <= before or not pool.working()) and time.monotonic() < deadline:
                    pool.supervise()
                    time.sleep(0.2)
                pool.kill_one(rng)
                say(f"chunk {index + 1}/{n_chunks}: {stored()} of {good} good stored; a consumer was SIGKILLed and restarted")
            if restart_broker and index == n_chunks // 2 and not restarts:
                say("restarting the broker")
                broker_restart()
                restarts += 1
            pool.supervise()
        producer.close(timeout=10)
        deadline = time.monotonic() + timeout_s
        dead: list[tuple[int, int]] = []
        while time.monotonic() < deadline:
            pool.supervise()
            dead = _dlq_offsets(topics.dlq, topics.raw)
            if stored() == good and bad_at <= set(dead):
                break
            time.sleep(1)
    finally:
        pool.stop()
    elapsed = time.monotonic() - started
    good_stored = stored()
    dead = _dlq_offsets(topics.dlq, topics.raw)
    in_dlq = bad_at & set(dead)
    rows = ScoredNews.objects.filter(message_id__startswith=f"chaos-{run}-").count()
    bucket_total = sum(Bucket.objects.filter(scope=symbol, granularity=Bucket.DAY).values_list("count", flat=True))
    links = NewsTicker.objects.filter(symbol=symbol).count()
    duplicated = (rows - good_stored) + max(bucket_total - good_stored, 0) + max(links - good_stored, 0)
    result: dict[str, Any] = {
        "good_sent": good, "good_stored_once": good_stored, "bad_sent": bad, "bad_in_dlq": len(in_dlq),
        "lost": (good - good_stored) + (bad - len(in_dlq)), "duplicated": duplicated,
        "consumer_crashes": len(pool.crashes), "consumer_kills": kills, "broker_restarts": restarts,
        "consumers": consumers, "consumer_starts": pool.started, "good_in_dlq": len(good_at & set(dead)),
        "dlq_copies": len(dead) - len(set(dead)),  # at least once: a kill between DLQ send and commit resends
        "aggregates_match": bucket_total == good_stored == links, "elapsed_s": round(elapsed, 1), "seed": seed,
    }
    if pool.crashes:
        result["crashes"] = pool.crashes[:10]
    result.update(_fuzz(fuzz_cases, seed=seed, say=say))
    say(f"good {good_stored}/{good} stored once, bad {len(in_dlq)}/{bad} in the DLQ, lost {result['lost']}, "
        f"duplicated {duplicated}, crashes {len(pool.crashes)} ({kills} kills, {restarts} broker restarts)")
    return result


def _fuzz(cases: int, *, seed: int, say: Any) -> dict[str, Any]:
    """HTTP fuzzing of the APIs by pipelines.fuzz (another part of the suite), when it is there."""
    if cases <= 0:
        return {"fuzz_http_cases": 0, "http_5xx": 0, "fuzz_note": "skipped (--fuzz-cases 0)"}
    try:
        from pipelines.fuzz import fuzz_http
    except ImportError as exc:
        return {"fuzz_http_cases": 0, "http_5xx": 0, "fuzz_note": f"pipelines.fuzz is not available ({exc})"}
    say(f"HTTP fuzzing: {cases} cases")
    try:
        found = fuzz_http(cases=cases, seed=seed)
    except Exception as exc:  # noqa: BLE001 - the Kafka figures above still stand; say why these are missing
        return {"fuzz_http_cases": 0, "http_5xx": None, "fuzz_note": f"the HTTP fuzz failed: {str(exc)[-500:]}"}
    return {"fuzz_http_cases": int(found["cases"]), "http_5xx": int(found["http_5xx"])}


def consume_main(argv: list[str]) -> int:
    """One benchmark consumer: the real news_consume on the run's topics until SIGTERM."""
    import argparse
    import threading

    parser = argparse.ArgumentParser(prog="python -m pipelines.bench_chaos consume")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # first: a stop asked for during start-up is a clean stop too
        signal.signal(sig, lambda *_: stop.set())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from pipelines.news_consumer import news_consume, stats_json
    from services.errors import ServiceUnavailable
    from services.sentiment.bus import Topics, kafka_require

    while not stop.is_set():  # started while the broker restarts: wait for it, as a supervisor would
        try:
            kafka_require()
            break
        except ServiceUnavailable:
            stop.wait(1)
    stats = news_consume(group=args.group, topics=Topics.named(args.prefix), batch_size=16, classify=cue_classify,
                         after_store=None, stop=stop)
    print(stats_json(stats), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["consume"]:
        sys.exit("usage: python -m pipelines.bench_chaos consume --prefix P --group G (the benchmark is "
                 "`python -m pipelines.bench chaos`)")
    sys.exit(consume_main(sys.argv[2:]))
