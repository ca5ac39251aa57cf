"""support_import: FAQ and documents in, idempotent re-import, in-place updates, bad input named by line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.management.base import CommandError

from apps.support.models import Document, FaqEntry, KnowledgeBase, Passage
from apps.vectors.models import Embedding, VectorSpace
from services.support.knowledge import item_delete, item_id, kb_index_state, kb_space
from services.vectors import DenseIndex, space_view
from tests.helpers import run_json

pytestmark = pytest.mark.django_db


def stored_keys(kb_name: str = "default") -> set[int]:
    """Item ids with a vector in the database, under the KB space's active encoder."""
    space = VectorSpace.objects.get(name=kb_space(KnowledgeBase.objects.get(name=kb_name)))
    return set(Embedding.objects.filter(space=space, encoder=space.encoder, vector__isnull=False).values_list("key", flat=True))


def saved_index(kb_name: str = "default") -> DenseIndex:
    """This process's view of the KB's vectors (what searches use)."""
    view = space_view(space=kb_space(KnowledgeBase.objects.get(name=kb_name)))
    assert view is not None
    return view.index


def all_items() -> set[int]:
    return {item_id(row) for row in [*FaqEntry.objects.all(), *Passage.objects.all()]}


def test_it_imports_faq_and_documents_into_passages_with_titles_and_locations(tiny_encoder, kb_files) -> None:  # noqa: ANN001
    report = run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), no_progress=True)
    assert report["added"] == 4 + 2 and report["errors"] == [] and report["kb"] == "default"
    assert FaqEntry.objects.count() == 4
    reset = Passage.objects.get(location="section Factory reset")
    assert reset.title == "Router manual — Factory reset" and "QZ-77" in reset.text
    assert Passage.objects.filter(document__source="terms.txt", location__startswith="lines ").exists()
    index = saved_index()
    assert len(index) == FaqEntry.objects.count() + Passage.objects.count() and stored_keys() == all_items()
    space = VectorSpace.objects.get(name=kb_space(KnowledgeBase.objects.get(name="default")))
    assert space.encoder == index.tag.name == "base:tiny-bert" and space.dim == index.tag.dim
    kb = KnowledgeBase.objects.get(name="default")  # the console shows the vectors the import made, not "empty"
    assert (kb.index_state, kb.index_progress) == ("ready", 1.0)
    assert kb_index_state(kb) == ("ready", f"{len(index)} items, flat")


def test_reimporting_the_same_files_changes_nothing(tiny_kb) -> None:  # noqa: ANN001
    before = (list(FaqEntry.objects.values_list("pk", "updated_at")), list(Passage.objects.values_list("pk", "text")))
    revision = KnowledgeBase.objects.get(name="default").revision
    vectors_revision = VectorSpace.objects.get(name=kb_space(KnowledgeBase.objects.get(name="default"))).revision
    report = run_json("support_import", faq=str(tiny_kb["faq"]), docs=str(tiny_kb["docs"]), no_progress=True)
    assert report["added"] == report["updated"] == report["removed"] == 0 and report["unchanged"] == 6
    assert (list(FaqEntry.objects.values_list("pk", "updated_at")), list(Passage.objects.values_list("pk", "text"))) == before
    assert KnowledgeBase.objects.get(name="default").revision == revision  # the index was not touched
    space = VectorSpace.objects.get(name=kb_space(KnowledgeBase.objects.get(name="default")))
    assert space.revision == vectors_revision  # nothing re-embedded


def test_changed_content_is_updated_in_place_and_removed_sections_leave_the_index(tiny_kb) -> None:  # noqa: ANN001
    refund = FaqEntry.objects.get(intent="refund")
    faq = tiny_kb["faq"]
    faq.write_text(faq.read_text().replace("within 30 days", "within 14 days"), encoding="utf-8")
    manual = tiny_kb["docs"] / "router.md"
    manual.write_text(manual.read_text().split("## Warranty")[0], encoding="utf-8")
    warranty = Passage.objects.get(location="section Warranty")
    report = run_json("support_import", faq=str(faq), docs=str(tiny_kb["docs"]), no_progress=True)
    assert report["updated"] == 2 and report["removed"] == 1 and report["added"] == 0
    refund.refresh_from_db()
    assert "14 days" in refund.answer and FaqEntry.objects.count() == 4  # same row, new answer
    assert not Passage.objects.filter(pk=warranty.pk).exists()
    index = saved_index()
    assert len(index) == FaqEntry.objects.count() + Passage.objects.count() and stored_keys() == all_items()
    assert warranty.pk * 2 + 1 not in set(index.index.id_map.at(i) for i in range(len(index)))  # noqa: C401


def test_deleting_an_entry_takes_it_out_of_the_index_without_a_rebuild(tiny_kb) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    entry = FaqEntry.objects.get(intent="shipping")
    n = len(saved_index())
    gone = item_id(entry)
    item_delete(kb=kb, rows=[entry])
    index = saved_index()
    assert len(index) == n - 1
    ids, _ = index.search(vectors=np.ones((1, index.tag.dim), dtype=np.float32) / np.sqrt(index.tag.dim), k=n)
    assert gone not in ids[0] and gone not in stored_keys()


def test_bad_rows_are_reported_by_line_and_the_good_rows_still_imported(tiny_encoder, tmp_path: Path) -> None:  # noqa: ANN001
    faq = tmp_path / "faq.csv"
    faq.write_text("question,answer\nGood one?,Yes.\n,no question here\nToo,many,cells\nAnother good?,Also yes.\n", encoding="utf-8")
    report = run_json("support_import", faq=str(faq), kb="brand-b", no_progress=True)
    assert report["added"] == 2 and report["kb"] == "brand-b"
    assert report["errors"][0].startswith("faq.csv:3:") and "question" in report["errors"][0]
    assert report["errors"][1].startswith("faq.csv:4:")
    jsonl = tmp_path / "faq.jsonl"
    jsonl.write_text('{"question": "Q1?", "answer": "A1"}\nnot json\n{"question": "Q2?"}\n', encoding="utf-8")
    report = run_json("support_import", faq=str(jsonl), kb="brand-b", no_progress=True)
    assert report["added"] == 1 and [e.split(":")[1] for e in report["errors"]] == ["2", "3"]


def test_unsupported_or_binary_files_are_named_and_skipped(tiny_encoder, tmp_path: Path) -> None:  # noqa: ANN001
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# Title\n\nSome text about the QZ-77.\n", encoding="utf-8")
    (docs / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    report = run_json("support_import", docs=str(docs), no_progress=True)
    assert report["added"] == 1
    assert any("sheet.xlsx" in e and "unsupported" in e for e in report["errors"])
    assert any("blob.txt" in e and "binary" in e for e in report["errors"])
    with pytest.raises(CommandError, match="unsupported FAQ file type"):
        run_json("support_import", faq=str(docs / "ok.md"), no_progress=True)
    with pytest.raises(CommandError, match="question"):
        (tmp_path / "h.csv").write_text("q,a\nx,y\n", encoding="utf-8")
        run_json("support_import", faq=str(tmp_path / "h.csv"), no_progress=True)


def test_prune_removes_entries_and_documents_that_left_their_file_or_folder(tiny_kb) -> None:  # noqa: ANN001
    faq, docs = tiny_kb["faq"], tiny_kb["docs"]
    faq.write_text("\n".join(line for line in faq.read_text().splitlines() if "bitcoin" not in line and "abroad" not in line) + "\n",
                   encoding="utf-8")
    (docs / "terms.txt").unlink()
    kept = run_json("support_import", faq=str(faq), docs=str(docs), no_progress=True)
    assert kept["removed"] == 0 and FaqEntry.objects.count() == 4  # without --prune nothing is deleted
    report = run_json("support_import", faq=str(faq), docs=str(docs), prune=True, no_progress=True)
    assert report["removed"] == 1 + 1 and report["errors"] == []
    assert not FaqEntry.objects.filter(intent="shipping").exists() and not Document.objects.filter(source="terms.txt").exists()
    assert len(saved_index()) == FaqEntry.objects.count() + Passage.objects.count() and stored_keys() == all_items()
    faq.write_text(faq.read_text() + ",no question\n", encoding="utf-8")
    refused = run_json("support_import", faq=str(faq), prune=True, no_progress=True)
    assert refused["removed"] == 0 and "nothing pruned" in refused["errors"][-1]
