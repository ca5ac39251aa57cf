import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="VectorSpace",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200, unique=True)),
                ("uid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("task", models.CharField(blank=True, default="", max_length=100)),
                ("encoder", models.CharField(max_length=200)),
                ("encoder_sha256", models.CharField(max_length=300)),
                ("dim", models.PositiveIntegerField()),
                ("pending_encoder", models.CharField(blank=True, default="", max_length=200)),
                ("pending_sha256", models.CharField(blank=True, default="", max_length=300)),
                ("pending_dim", models.PositiveIntegerField(blank=True, null=True)),
                ("revision", models.BigIntegerField(default=0)),
                ("generation", models.PositiveIntegerField(default=1)),
                ("purged_revision", models.BigIntegerField(default=0)),
                ("snapshot", models.CharField(blank=True, default="", max_length=500)),
                ("snapshot_revision", models.BigIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.CreateModel(
            name="Embedding",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("encoder", models.CharField(max_length=200)),
                ("key", models.BigIntegerField()),
                ("vector", models.BinaryField(null=True)),
                ("content_hash", models.CharField(blank=True, default="", max_length=64)),
                ("revision", models.BigIntegerField()),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("space", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="embeddings",
                                            to="vectors.vectorspace")),
            ],
            options={
                "indexes": [models.Index(fields=["space", "encoder", "revision"], name="vectors_emb_space_rev")],
                "constraints": [models.UniqueConstraint(fields=("space", "encoder", "key"), name="vectors_embedding_unique_key")],
            },
        ),
    ]
