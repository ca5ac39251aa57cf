from __future__ import annotations

from django.db import models


class Access(models.Model):
    """Holds the suite's access permissions; it has no table of its own."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("access_support", "Use the support desk agent console"),
            ("access_sentiment", "Use the market sentiment monitor"),
            ("access_recommender_api", "Call the recommender API"),
            ("access_recommender_admin", "View the recommender admin page"),
            ("access_registry", "Manage the model registry"),
        ]
