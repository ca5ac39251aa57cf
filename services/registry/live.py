"""Live pushes of model operations to the `registry-ops` channel group (the Model operations page listens).

Events, each {"event": name, "data": payload} on the WebSocket /ws/registry/ops/:
- ops_alert: {"id", "task", "run", "level", "message", "created_at"}: a stored OpsAlert (a failed or abandoned run);
- run_progress: {"run", "task", "status", "phase", "step", "total", "version", "reason"}: a retraining run moved on;
- champion_changed: {"task", "version", "previous", "action", "actor", "reason", "at"}: a promotion or rollback;
- alert_acknowledged: {"id", "task", "message", "created_at", "acknowledged_by", "acknowledged_comment",
  "acknowledged_at"}: an admin acknowledged an alert (services/registry/operations.py).
The stored rows are the record: a push is best effort (Redis may be down) and never fails the work that made it.
"""
from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

OPS_GROUP = "registry-ops"
WARN_EVERY_S = 60.0  # a down channel layer is logged once a minute, not on every training step
_last_warning = [-WARN_EVERY_S]


def ops_push(*, event: str, payload: dict[str, Any]) -> None:
    """Send one event to the Model operations page's WebSockets; log, never raise, when the channel layer is down."""
    try:
        from apps.core.live import group_push

        group_push(group=OPS_GROUP, event=event, payload=payload)
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        now = time.monotonic()
        if now - _last_warning[0] >= WARN_EVERY_S:
            _last_warning[0] = now
            logger.warning("registry-ops live pushes are failing (the page shows stored state on reload): %s: %s", event, exc)
