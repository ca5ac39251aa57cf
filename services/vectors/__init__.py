"""Vectors shared by every room: the FAISS index wrapper and "embed these texts for task T" (champion, else base)."""
from __future__ import annotations

from services.vectors.encode import encoder_tag_for, index_from_texts, texts_embed_for, vectors_folder
from services.vectors.index import DenseIndex, EncoderTag, folder_locked, gpu_available

__all__ = ["DenseIndex", "EncoderTag", "encoder_tag_for", "folder_locked", "gpu_available", "index_from_texts",
           "texts_embed_for", "vectors_folder"]
