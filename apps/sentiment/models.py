"""Market sentiment: scored headlines, the watchlist, rolling aggregates, alert rules, alerts and relabels."""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

LABELS = [("positive", "positive"), ("neutral", "neutral"), ("negative", "negative")]
OVERALL = "*"  # the aggregate scope that counts every headline
# The largest values of an alert rule's numbers: far beyond any useful rule, well inside what dates and the
# database hold (a window of 10**12 minutes overflows Python's datetime and stopped every later rule).
RULE_LIMITS = {"window_minutes": 30 * 24 * 60, "baseline_days": 10 * 365, "min_count": 1_000_000,
               "cooldown_minutes": 365 * 24 * 60, "threshold": 1_000_000.0, "for_evaluations": 10_000,
               "group_minutes": 7 * 24 * 60}
# A new rule's clear threshold, as a fraction of its fire threshold (stored as the absolute value it gives): 1.5 for
# the default z-score rule's 2.0, the setting the alerts benchmark measured (docs/PERFORMANCE.md, with `for` 3:
# recall 1.00, 2.7 false alerts a day, 134 notices against 1.00 / 16.1 / 494 without hysteresis and `for` 1).
CLEAR_FRACTION = 0.75


class Ticker(models.Model):
    """A watchlist entry: a symbol, the company's name and the aliases a headline may use for it."""

    symbol = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200, blank=True)
    aliases = models.JSONField(default=list, blank=True)  # e.g. ["Apple", "Apple Inc"]; matched as whole words
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol


class ScoredNews(models.Model):
    """One headline from `news.raw`, scored; unique on the message id so redelivery never duplicates."""

    message_id = models.CharField(max_length=200, unique=True)
    source = models.CharField(max_length=100, db_index=True)
    published_at = models.DateTimeField(db_index=True)
    headline = models.TextField()
    body = models.TextField(blank=True)
    url = models.URLField(max_length=1000, blank=True)
    tickers = models.JSONField(default=list)  # symbols: cashtags, the message's own list and watchlist matches
    topics = models.JSONField(default=list)  # names: the `topic` champion's label, else the keyword lists' matches
    topic_version = models.PositiveIntegerField(null=True, blank=True)  # the topic model's version; None: keyword lists
    label = models.CharField(max_length=10, choices=LABELS)
    p_positive = models.FloatField()
    p_neutral = models.FloatField()
    p_negative = models.FloatField()
    score = models.FloatField()  # P(positive) - P(negative), in [-1, 1]
    model_task = models.CharField(max_length=100, default="sentiment")
    model_version = models.PositiveIntegerField()
    produced_at = models.DateTimeField(null=True, blank=True)  # the Kafka record's timestamp (for latency)
    stored_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-published_at", "-id"]
        verbose_name_plural = "scored news"

    def __str__(self) -> str:
        return self.headline[:80]


class NewsTicker(models.Model):
    """Links a scored headline to one ticker symbol (for drill-down queries)."""

    news = models.ForeignKey(ScoredNews, on_delete=models.CASCADE, related_name="ticker_links")
    symbol = models.CharField(max_length=20, db_index=True)

    class Meta:
        unique_together = [("news", "symbol")]


class Bucket(models.Model):
    """A rolling aggregate: headlines in one time bucket for one scope.

    Scopes: '*' (every headline), a ticker symbol ("ACME"), a topic ("#Earnings") and a ticker within a topic
    ("ACME#Earnings"), spelt as alert rules name their target (AlertRule.target).
    """

    MINUTE, HOUR, DAY = "minute", "hour", "day"
    GRANULARITIES = [(MINUTE, MINUTE), (HOUR, HOUR), (DAY, DAY)]

    scope = models.CharField(max_length=130)
    granularity = models.CharField(max_length=10, choices=GRANULARITIES)
    start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    score_sum = models.FloatField(default=0.0)
    score_sq_sum = models.FloatField(default=0.0)  # for the baseline's standard deviation
    negative_count = models.PositiveIntegerField(default=0)

    class Meta:
        unique_together = [("scope", "granularity", "start")]
        indexes = [models.Index(fields=["scope", "granularity", "start"], name="sentiment_bucket_lookup")]
        ordering = ["start"]

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.count if self.count else 0.0

    @property
    def negative_share(self) -> float:
        return self.negative_count / self.count if self.count else 0.0


class AlertRule(models.Model):
    """One alert rule on a ticker, a topic, or a ticker within a topic; editable by analysts.

    Its alerts go pending → firing → resolved (services/sentiment/alerts.py): the condition must hold for
    `for_evaluations` consecutive evaluations before firing, and a firing alert resolves only once the value falls
    below `clear_threshold` (hysteresis). Notifications are grouped per ticker/topic within `group_minutes` and
    repeated every `cooldown_minutes` while the alert keeps firing (services/sentiment/notifications.py).
    """

    ZSCORE, NEGATIVE_SHARE, VOLUME = "zscore", "negative_share", "volume"
    KINDS = [(ZSCORE, "z-score of the window's mean score vs the baseline"),
             (NEGATIVE_SHARE, "negative share in the window above the threshold"),
             (VOLUME, "window volume vs the baseline's mean volume (ratio)")]

    ticker = models.ForeignKey(Ticker, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")
    topic = models.CharField(max_length=100, blank=True)  # a headline topic; with a ticker: that ticker within it
    kind = models.CharField(max_length=20, choices=KINDS, default=ZSCORE)
    threshold = models.FloatField(default=2.0)  # |z| for zscore, a share in [0, 1], or a volume ratio
    clear_threshold = models.FloatField(  # a firing alert resolves below it; empty: `threshold` (no hysteresis)
        null=True, blank=True,
        help_text="A firing alert resolves below it. A new rule left empty gets 0.75 × its threshold; "
                  "set it equal to the threshold for no hysteresis.")
    window_minutes = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1),
                                                                        MaxValueValidator(RULE_LIMITS["window_minutes"])])
    baseline_days = models.PositiveIntegerField(default=7, validators=[MinValueValidator(1),
                                                                      MaxValueValidator(RULE_LIMITS["baseline_days"])])
    min_count = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1),  # fewer in the window: no verdict
                                                                  MaxValueValidator(RULE_LIMITS["min_count"])])
    for_evaluations = models.PositiveIntegerField(default=3, validators=[  # pending until it held this many times in a row
        MinValueValidator(1), MaxValueValidator(RULE_LIMITS["for_evaluations"])],
        help_text="Consecutive evaluations the condition must hold before the alert fires (1: at once).")
    cooldown_minutes = models.PositiveIntegerField(default=60, validators=[  # repeat interval of a firing alert's notice
        MinValueValidator(1), MaxValueValidator(RULE_LIMITS["cooldown_minutes"])])
    group_minutes = models.PositiveIntegerField(default=5, validators=[  # one notice per ticker/topic within it
        MaxValueValidator(RULE_LIMITS["group_minutes"])])
    channels = models.JSONField(default=list, blank=True)  # of "inapp", "email", "webhook"
    email_to = models.CharField(max_length=500, blank=True)  # comma-separated
    webhook_url = models.URLField(max_length=1000, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_error = models.TextField(blank=True)  # why its last evaluation failed (the other rules still ran)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ticker__symbol", "topic", "kind"]

    def __str__(self) -> str:
        return f"{self.target} {self.kind} ≥ {self.threshold}"

    @property
    def target(self) -> str:
        """What the rule watches, as its alerts are grouped: "ACME", "#earnings" or "ACME#earnings"."""
        return f"{self.ticker.symbol if self.ticker_id else ''}{'#' + self.topic if self.topic else ''}"

    @staticmethod
    def clear_default(threshold: float) -> float:
        """The clear threshold a new rule gets when none is given: CLEAR_FRACTION of its fire threshold."""
        return round(threshold * CLEAR_FRACTION, 6)

    @property
    def clear_at(self) -> float:
        return self.threshold if self.clear_threshold is None else self.clear_threshold


class Silence(models.Model):
    """A time-boxed mute: alerts matching every field set (ticker, topic, rule) change state but notify nobody."""

    symbol = models.CharField(max_length=20, blank=True, db_index=True)
    topic = models.CharField(max_length=100, blank=True)
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(db_index=True)  # expired from then on
    reason = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-ends_at", "-id"]

    def __str__(self) -> str:
        what = " ".join(filter(None, [self.symbol, f"#{self.topic}" if self.topic else "",
                                      f"rule {self.rule_id}" if self.rule_id else ""]))
        return f"silence {what} until {self.ends_at:%Y-%m-%d %H:%M}"


class Alert(models.Model):
    """One episode of a rule's condition: pending → firing → resolved; at most one open (pending/firing) per rule."""

    PENDING, FIRING, RESOLVED = "pending", "firing", "resolved"
    STATES = [(PENDING, PENDING), (FIRING, FIRING), (RESOLVED, RESOLVED)]

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    symbol = models.CharField(max_length=20, db_index=True)  # blank for a topic-wide rule
    topic = models.CharField(max_length=100, blank=True)
    group_key = models.CharField(max_length=130, blank=True, db_index=True)  # the rule's target: notices group on it
    kind = models.CharField(max_length=20)
    state = models.CharField(max_length=10, choices=STATES, default=FIRING)
    value = models.FloatField()  # at the latest evaluation
    threshold = models.FloatField()
    message = models.TextField()
    dedup_key = models.CharField(max_length=200, unique=True)  # rule id + the start of the episode
    window_end = models.DateTimeField()  # the end of the window it last judged (event time)
    window_start = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)  # event time the condition first held (pending)
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    evaluations = models.PositiveIntegerField(default=1)  # consecutive evaluations the condition held
    headline_ids = models.JSONField(default=list, blank=True)  # the window's headlines when it fired (drill-down)
    notified_state = models.CharField(max_length=10, blank=True)  # the last state notified (or muted by a silence)
    last_notified_at = models.DateTimeField(null=True, blank=True)  # event time of its last notice actually sent
    silence = models.ForeignKey(Silence, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["rule"], condition=models.Q(state__in=["pending", "firing"]),
                                               name="sentiment_alert_one_open_per_rule")]


class Notification(models.Model):
    """One notice to a rule's channels about a group (ticker/topic): the alerts that fired, still fire or resolved."""

    group_key = models.CharField(max_length=130, db_index=True)
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="notifications")  # whose channels
    alerts = models.ManyToManyField(Alert, related_name="notifications")
    message = models.TextField()
    at = models.DateTimeField()  # event time of the evaluation that sent it
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]


class Delivery(models.Model):
    """A notification on one channel: an outbox row made in its transaction, sent by a Celery task, retried."""

    PENDING, SENT, FAILED = "pending", "sent", "failed"
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")  # the notice's first alert
    notification = models.ForeignKey(Notification, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="deliveries")  # empty on deliveries made before notifications
    channel = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=[(PENDING, PENDING), (SENT, SENT), (FAILED, FAILED)],
                              default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)  # the last attempt's error
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # a pending row's next try (after its backoff)
    claimed_until = models.DateTimeField(null=True, blank=True)  # a task is sending it; others leave it alone until then
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["notification", "channel"], name="sentiment_delivery_once_per_notice"),
                       models.UniqueConstraint(fields=["alert", "channel"], condition=models.Q(notification__isnull=True),
                                               name="sentiment_delivery_once")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="sentiment_delivery_due")]


class DeliveryAttempt(models.Model):
    """One try of a delivery and how it ended (sent, retry later, failed)."""

    SENT, RETRY, FAILED = "sent", "retry", "failed"
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10, choices=[(SENT, SENT), (RETRY, RETRY), (FAILED, FAILED)])
    error = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="sentiment_attempt_once")]


class Relabel(models.Model):
    """An analyst's correction of a headline's label: a training example for its `task` (`sentiment` or `topic`).

    A sentiment label is one of LABELS; a topic label is a topic name (services/sentiment/topics.py checks it).
    """

    news = models.ForeignKey(ScoredNews, null=True, on_delete=models.SET_NULL, related_name="relabels")
    text = models.TextField()
    label = models.CharField(max_length=100)
    previous_label = models.CharField(max_length=100, blank=True)
    task = models.CharField(max_length=100, default="sentiment")
    source = models.CharField(max_length=200)  # who: "analyst:<username>"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Feed(models.Model):
    """An RSS/Atom feed polled into `news.raw`."""

    url = models.URLField(max_length=1000, unique=True)
    source = models.CharField(max_length=100)  # the `source` of its messages
    enabled = models.BooleanField(default=True)
    etag = models.CharField(max_length=500, blank=True)  # conditional GET: unchanged feeds cost one 304
    modified = models.CharField(max_length=100, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["source"]

    def __str__(self) -> str:
        return f"{self.source} ({self.url})"


class FeedEntry(models.Model):
    """An entry already sent from a feed (by its id, else its link): the poller's deduplication."""

    feed = models.ForeignKey(Feed, on_delete=models.CASCADE, related_name="entries")
    key = models.CharField(max_length=64)  # sha256 of the entry's id or link
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        unique_together = [("feed", "key")]
