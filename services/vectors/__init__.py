"""Vectors shared by every room and every host: the FAISS index wrapper, "embed these texts for task T", and the
store (services/vectors/store.py) that keeps embeddings in the database and each process's index in step with it."""
from __future__ import annotations

from services.vectors.encode import encoder_tag_for, texts_embed_for, texts_embed_tagged
from services.vectors.index import DenseIndex, EncoderTag, gpu_available
from services.vectors.sources import TextSource, source_register
from services.vectors.store import (encoder_switch_check, space_drop, space_ensure, space_reembed, space_status,
                                    tombstones_purge, vectors_delete, vectors_embed, vectors_put, vectors_request,
                                    vectors_stored)
from services.vectors.sync import SpaceView, query_vectors, snapshot_build, space_view, views_forget

__all__ = ["DenseIndex", "EncoderTag", "SpaceView", "TextSource", "encoder_switch_check", "encoder_tag_for",
           "gpu_available", "query_vectors", "snapshot_build", "source_register", "space_drop", "space_ensure",
           "space_reembed", "space_status", "space_view", "texts_embed_for", "texts_embed_tagged", "tombstones_purge",
           "vectors_delete", "vectors_embed", "vectors_put", "vectors_request", "vectors_stored", "views_forget"]
