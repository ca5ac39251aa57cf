"""Shared vectors: the database is the system of record for embeddings (services/vectors/store.py writes and reads these).

A VectorSpace is one searchable collection ("recommender", "support:<kb pk>"); its Embeddings are keyed by the
caller's stable id and the encoder that made them. Every write bumps the space's revision under a lock of its
row and stamps the rows it wrote, so a process that has synced up to revision R fetches exactly the rows > R.
"""
from __future__ import annotations

import uuid

from django.db import models


class VectorSpace(models.Model):
    name = models.CharField(max_length=200, unique=True)  # "recommender", "support:12"
    # Process caches are keyed by uid, not name or pk: a test's rollback (or a drop and re-create) reuses both.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    task = models.CharField(max_length=100, blank=True, default="")  # registry task whose champion embeds it; "" = the default base
    # The active encoder: what queries are answered with.
    encoder = models.CharField(max_length=200)
    encoder_sha256 = models.CharField(max_length=300)
    dim = models.PositiveIntegerField()
    # An encoder being built beside the active one (blank when no switch is running).
    pending_encoder = models.CharField(max_length=200, blank=True, default="")
    pending_sha256 = models.CharField(max_length=300, blank=True, default="")
    pending_dim = models.PositiveIntegerField(null=True, blank=True)
    revision = models.BigIntegerField(default=0)  # the last write's revision
    generation = models.PositiveIntegerField(default=1)  # bumped when the active encoder changes: processes reload
    purged_revision = models.BigIntegerField(default=0)  # tombstones at or below it are gone: a reader below it reloads
    snapshot = models.CharField(max_length=500, blank=True, default="")  # relative to SUITE_REGISTRY_DIR; "" = none
    snapshot_revision = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.encoder}, r{self.revision})"


class Embedding(models.Model):
    space = models.ForeignKey(VectorSpace, on_delete=models.CASCADE, related_name="embeddings")
    encoder = models.CharField(max_length=200)  # the EncoderTag name that made it
    key = models.BigIntegerField()  # the caller's stable id (an item pk, a KB item pk)
    vector = models.BinaryField(null=True)  # float32 bytes; NULL = a deletion (tombstone) until purged
    content_hash = models.CharField(max_length=64, blank=True, default="")  # of the text embedded
    revision = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "encoder", "key"], name="vectors_embedding_unique_key")]
        indexes = [models.Index(fields=["space", "encoder", "revision"], name="vectors_emb_space_rev")]

    def __str__(self) -> str:
        return f"{self.space_id}/{self.encoder}/{self.key} r{self.revision}"
