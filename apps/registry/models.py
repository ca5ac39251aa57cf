from __future__ import annotations

from django.db import models


class BaseModel(models.Model):
    """A base encoder: a local Hugging Face model folder, never downloaded, recorded without a host path."""

    name = models.SlugField(max_length=100, unique=True)
    # `package:<name>` (a model shipped in a Python package, found in each host's site-packages) or a folder relative
    # to SUITE_REGISTRY_DIR (services/registry/paths.py); `path` is where it is on this host.
    location = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    embedding_size = models.PositiveIntegerField()
    licence = models.CharField(max_length=100, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        """The model folder on this host (resolved at each use: the database holds no host path)."""
        from services.registry.paths import base_resolve

        return str(base_resolve(self.location))


class Task(models.Model):
    """A task that adapters are trained for (sentiment, intent, recommender, ...), with its promotion gate."""

    KIND_CLASSIFIER = "classifier"
    KIND_PAIRS = "pairs"
    KINDS = [(KIND_CLASSIFIER, "text classification"), (KIND_PAIRS, "embedding tuning from pairs")]

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=KINDS, default=KIND_CLASSIFIER)
    # The gate: a challenger must beat the champion on gate_metric by at least gate_min_gain,
    # and may not lose more than gate_max_drop on gate_guard_metric.
    gate_metric = models.CharField(max_length=50, default="macro_f1")
    gate_min_gain = models.FloatField(default=0.0)
    gate_guard_metric = models.CharField(max_length=50, blank=True, default="accuracy")
    gate_max_drop = models.FloatField(default=0.01)
    # Retraining: the base training file and the fixed held-back evaluation file (CSV/JSONL with `text,label`), as
    # copies in the registry folder, `data/<sha256>/<file name>` (services/registry/paths.py); `retrain_data` and
    # `retrain_eval` are where they are on this host.
    retrain_data_file = models.CharField(max_length=500, blank=True)
    retrain_eval_file = models.CharField(max_length=500, blank=True)
    # New feedback examples a scheduled run needs before it trains; empty = the RETRAIN_MIN_EXAMPLES setting.
    retrain_min_examples = models.PositiveIntegerField(null=True, blank=True)
    # The per-task retraining lock: a holder token and an expiry its heartbeat pushes forward, so a dead
    # holder's lock lapses on its own. Claimed with a conditional update (services/registry/retrain.py).
    retrain_lock_owner = models.CharField(max_length=64, blank=True)
    retrain_lock_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def retrain_data(self) -> str:
        """The base training file on this host ("" when none is recorded)."""
        from services.registry.paths import registry_resolve

        return str(registry_resolve(self.retrain_data_file)) if self.retrain_data_file else ""

    @property
    def retrain_eval(self) -> str:
        """The held-back evaluation file on this host ("" when none is recorded)."""
        from services.registry.paths import registry_resolve

        return str(registry_resolve(self.retrain_eval_file)) if self.retrain_eval_file else ""


class AdapterVersion(models.Model):
    """One trained LoRA adapter: an artifact folder on disk plus what it is and where it came from."""

    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    base = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="adapters")
    location = models.CharField(max_length=500)  # the artifact folder relative to SUITE_REGISTRY_DIR; `path` on this host
    sha256 = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict)
    label_map = models.JSONField(default=list, blank=True)
    train_config = models.JSONField(default=dict)
    data_fingerprint = models.CharField(max_length=64)
    data_source = models.CharField(max_length=500, blank=True)  # the training data's copy: `data/<sha256>/<name>`
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    created_by = models.CharField(max_length=150)  # a username, or "pipeline:<name>" for automated runs
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "-version"]
        constraints = [models.UniqueConstraint(fields=["task", "version"], name="unique_task_version")]

    def __str__(self) -> str:
        return f"{self.task.name} v{self.version}"

    @property
    def path(self) -> str:
        """The artifact folder on this host (resolved at each use: the database holds no host path)."""
        from services.registry.paths import registry_resolve

        return str(registry_resolve(self.location))


class Alias(models.Model):
    CHAMPION = "champion"
    CHALLENGER = "challenger"
    NAMES = [(CHAMPION, "champion"), (CHALLENGER, "challenger")]

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=20, choices=NAMES)
    version = models.ForeignKey(AdapterVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "name"], name="unique_task_alias")]

    def __str__(self) -> str:
        return f"{self.task.name}@{self.name} → v{self.version.version}"


class AliasEvent(models.Model):
    """The audit log: every alias move, who made it, why, and the metrics it was judged on."""

    ACTIONS = [("register", "register"), ("promote", "promote"), ("rollback", "rollback"), ("reject", "reject")]

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    alias = models.CharField(max_length=20)
    action = models.CharField(max_length=20, choices=ACTIONS)
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    forced = models.BooleanField(default=False)
    metrics = models.JSONField(default=dict)  # {"candidate": {...}, "champion": {...}}
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.task.name} {self.action} {self.alias}: v{self.from_version} → v{self.to_version}"


class RetrainRun(models.Model):
    """One retraining job of a task: what it saw, what it trained, how it was judged, and why."""

    RUNNING, PROMOTED, REJECTED, SKIPPED, FAILED = "running", "promoted", "rejected", "skipped", "failed"
    STATUSES = [(s, s) for s in (RUNNING, PROMOTED, REJECTED, SKIPPED, FAILED)]

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="retrain_runs")
    status = models.CharField(max_length=20, choices=STATUSES, default=RUNNING)
    forced = models.BooleanField(default=False)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    examples_until = models.DateTimeField(null=True, blank=True)  # feedback up to here was used; the next run counts from it
    n_new_examples = models.PositiveIntegerField(default=0)
    n_examples = models.PositiveIntegerField(default=0)  # base data plus every feedback example
    version = models.ForeignKey(AdapterVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="retrain_runs")
    promoted = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    metrics = models.JSONField(default=dict)  # the new version on the held-back set
    champion_metrics = models.JSONField(default=dict)  # the champion on the same held-back set
    drift = models.JSONField(default=dict)  # {"label_tvd", "new", "train", "embedding": {...}} (services/registry/drift.py)
    # Where a running run is (collecting, training, registering, evaluating, gating, done) and its training steps
    # {"step", "total"}: the operations page shows it live; a killed run keeps the phase it died in.
    phase = models.CharField(max_length=20, blank=True)
    progress = models.JSONField(default=dict)
    # Rows of the task's files that the run could not use ("file:line: reason", the first SKIPPED_ROWS_KEPT of
    # n_skipped_rows): shown with the run, so a typo in a data file is never dropped without a word.
    n_skipped_rows = models.PositiveIntegerField(default=0)
    skipped_rows = models.JSONField(default=list, blank=True)

    SKIPPED_ROWS_KEPT = 100

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.task.name} retrain {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class OpsAlert(models.Model):
    """An in-app notice for admins (e.g. a failed retrain run), shown at the top of the Model operations page."""

    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="ops_alerts")
    run = models.ForeignKey(RetrainRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    level = models.CharField(max_length=20, default="error")
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_comment = models.TextField(blank=True)  # what the admin who acknowledged it said (the message stays as raised)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.level}: {self.message[:60]}"
