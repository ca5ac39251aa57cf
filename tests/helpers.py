"""Helpers shared by the test modules: a command's JSON answer, waiting for a condition, local HTTP servers."""
from __future__ import annotations

import csv
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import TypeVar

from django.core.management import call_command

T = TypeVar("T")


def run_json(*args: str, **opts: object) -> dict:
    """Run a management command in this process and return the JSON object on the last line it printed."""
    out = StringIO()
    call_command(*args, stdout=out, **opts)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def wait_until(predicate: Callable[[], T], *, timeout: float, message: str | Callable[[], str],
               proc: subprocess.Popen | None = None, interval: float = 0.2) -> T:
    """The first truthy value of `predicate()`, polled every `interval` seconds; AssertionError when it never comes.

    1. Call `predicate`; a truthy value is returned at once.
    2. When `proc` has exited, fail now: a dead process will not make the condition true.
    3. Past `timeout` seconds, fail with `message` (a callable is called then, e.g. to read a log).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        exited = proc is not None and proc.poll() is not None
        if exited or time.monotonic() >= deadline:
            text = message() if callable(message) else message
            why = f"the process exited with {proc.returncode}" if exited else f"waited {timeout:g} s"
            raise AssertionError(f"{text} ({why})")
        time.sleep(interval)


@contextmanager
def http_serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free local port in a thread; yields the base URL (http://127.0.0.1:PORT)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass  # pytest shows the test's own output, not one line per request


class WebhookServer:
    """A webhook receiver that records JSON POSTs and answers with scripted status codes (use `webhook_serve`)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.statuses: list[int] = []  # answered in order; 200 once used up
        self.event = threading.Event()  # set by the first 200
        self.hold: threading.Event | None = None  # when set to an Event, requests wait for it (a slow receiver)
        self.url = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.hold is not None:
                    server.hold.wait(60)
                status = server.statuses.pop(0) if server.statuses else 200
                server.received.append({"status": status, "json": json.loads(body),
                                        "content_type": self.headers.get("Content-Type")})
                self.send_response(status)
                self.end_headers()
                if status == 200:
                    server.event.set()

        return Handler


@contextmanager
def webhook_serve() -> Iterator[WebhookServer]:
    """A running WebhookServer; its `url` ends in /hook."""
    server = WebhookServer()
    with http_serve(server.handler()) as base:
        server.url = f"{base}/hook"
        yield server


@contextmanager
def silent_server(*, trickle: bool = False) -> Iterator[str]:
    """Accepts connections and says nothing (or, with `trickle`, one header byte at a time forever)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            while trickle and not stop.wait(0.05):
                try:
                    conn.sendall(b"H")
                except OSError:
                    break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def csv_write(path: Path, texts: list[str], labels: list[str], *, columns: tuple[str, str] = ("text", "label")) -> Path:
    """A labelled CSV file with a header row (`columns`), one (text, label) per row."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(texts, labels))
    return path


def process_stop(proc: subprocess.Popen, *, timeout: float) -> None:
    """Ask a child process to stop (SIGTERM); kill it when it has not exited within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def database_url() -> str:
    """DATABASE_URL of the database this test runs on (SQLite file or PostgreSQL test_<db>), for child processes."""
    from urllib.parse import quote

    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    if connection.vendor == "postgresql":
        auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s.get("PASSWORD") else "")
        host = s["HOST"] or "127.0.0.1"
        return f"postgres://{auth}@{host}:{s['PORT'] or 5432}/{quote(s['NAME'], safe='')}"
    raise NotImplementedError(f"no DATABASE_URL for a {connection.vendor} test database")
