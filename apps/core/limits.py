"""Request body limits: a body larger than its endpoint allows is refused with 413 before it is read or parsed.

The limit is SUITE_MAX_JSON_BYTES, or SUITE_MAX_BULK_JSON_BYTES for a view that declares `body_limit = "bulk"`
(the recommender's bulk writes). Two guards, because a client chooses what Content-Length says:
1. BodyLimitMiddleware (Django, every server): a declared Content-Length over the limit answers 413 at once.
2. BodyLimitASGI (the ASGI server, config/asgi.py): counts the bytes actually received, chunked or not, and
   answers 413 as soon as they pass the limit, before Django buffers the body.
Both answer in the suite's one error shape `{error: "too_large", detail, field: "body"}`.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from apps.core.errors import suite_error_payload
from services.errors import SuiteError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(SuiteError):
    status_code = 413
    code = "too_large"


def body_limit_for(path: str) -> tuple[int, str]:
    """(bytes, setting name) allowed for a request body to this path: the bulk limit for bulk views, else the JSON one."""
    try:
        view = resolve(path).func
    except Resolver404:
        view = None
    if getattr(getattr(view, "view_class", None), "body_limit", "") == "bulk":
        return settings.SUITE_MAX_BULK_JSON_BYTES, "SUITE_MAX_BULK_JSON_BYTES"
    return settings.SUITE_MAX_JSON_BYTES, "SUITE_MAX_JSON_BYTES"


def body_too_large(*, limit: int, setting: str) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {limit} bytes, the most this endpoint reads ({setting}).",
                        field="body")


def _declared_length(raw: str | bytes | None) -> int | None:
    """Content-Length as a number; None when absent; -1 when it is not a number (refused as malformed)."""
    if raw in (None, "", b""):
        return None
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return int(text) if text.strip().isdigit() else -1


class BodyLimitMiddleware:
    """A declared Content-Length over the endpoint's limit (or not a number) is refused before anything reads the body."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = _declared_length(request.META.get("CONTENT_LENGTH"))
        if declared is not None:
            limit, setting = body_limit_for(request.path_info)
            if declared < 0:
                error = SuiteError("Content-Length must be a number of bytes.", field="body")
                return JsonResponse(suite_error_payload(error), status=400)
            if declared > limit:
                return JsonResponse(suite_error_payload(body_too_large(limit=limit, setting=setting)), status=413)
        return self.get_response(request)


class BodyLimitASGI:
    """ASGI wrapper of the HTTP application: reads the body itself, at most the limit, then replays it.

    1. Other scopes (WebSocket, lifespan) pass through untouched.
    2. A declared Content-Length over the limit answers 413 without reading anything.
    3. Otherwise the body is received chunk by chunk; past the limit the request answers 413 and the rest is
       never read. Within it, the application receives the whole body as one message, then the real channel
       (for http.disconnect).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        limit, setting = body_limit_for(scope.get("path", "/"))
        headers = dict(scope.get("headers") or [])
        declared = _declared_length(headers.get(b"content-length"))
        if declared is not None and declared > limit:
            return await _refuse(send, body_too_large(limit=limit, setting=setting))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # the client left: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _refuse(send, body_too_large(limit=limit, setting=setting))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _refuse(send: Send, error: SuiteError) -> None:
    body = json.dumps(suite_error_payload(error)).encode()
    await send({"type": "http.response.start", "status": error.status_code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
