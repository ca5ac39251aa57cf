from __future__ import annotations

from apps.core.consumers import GroupConsumer
from services.registry.live import OPS_GROUP


class OpsConsumer(GroupConsumer):
    """The Model operations page's live feed: ops_alert, alert_acknowledged, run_progress, champion_changed."""

    group = OPS_GROUP
    area = "registry"
