"""A real local HTTP server that records JSON POSTs and answers with scripted status codes."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class WebhookServer:
    def __init__(self) -> None:
        self.received: list[dict] = []
        self.statuses: list[int] = []  # answered in order; 200 once used up
        self.event = threading.Event()
        self.hold: threading.Event | None = None  # when set to an Event, requests wait for it (a slow receiver)
        server = self

        class Handler(BaseHTTPRequestHandler):
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

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webhook_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookServer]:
    from services.sentiment.channels import WebhookChannel

    monkeypatch.setattr(WebhookChannel, "backoff_s", 0.05)  # the real backoff doubles from 0.5 s
    server = WebhookServer()
    yield server
    server.close()
