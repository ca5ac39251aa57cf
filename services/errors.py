"""The suite's one application error type; apps.core.errors turns it into HTTP responses."""
from __future__ import annotations


class SuiteError(Exception):
    """An error with a message meant for the person or client who caused it."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(SuiteError):
    status_code = 404
    code = "not_found"


class ServiceUnavailable(SuiteError):
    """A backing service (Redis, Kafka, a worker) cannot be reached."""

    status_code = 503
    code = "service_unavailable"


class Conflict(SuiteError):
    """Someone else changed the thing first (another agent took the conversation, a job was already claimed)."""

    status_code = 409
    code = "conflict"
