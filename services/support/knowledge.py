"""Knowledge bases: import FAQ files and documents idempotently, and keep each KB's vectors in step.

Every FAQ entry and passage is one searchable item with a stable id (`item_id`): FAQ pk*2, passage pk*2+1,
so one vector space ("support:<kb pk>", services.vectors: the database holds the vectors, every process searches
its own in-memory copy) holds both. A changed row is re-embedded under the same id (on a worker, or here in
`process` mode); a removed row's vector is tombstoned at once. No index files, no folder locks.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.support.models import Document, FaqEntry, KnowledgeBase, Passage
from services.errors import NotFound, SuiteError
from services.support.documents import DOC_SUFFIXES, FaqRow, document_split, faq_read, text_hash
from services.vectors import (TextSource, source_register, space_ensure, space_status, vectors_delete, vectors_embed,
                              vectors_request)

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)  # "file:line: reason": reported, the rest still imported

    def as_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "removed": self.removed,
                "errors": self.errors}


# --- knowledge bases -------------------------------------------------------------------------------------

def kb_ensure(*, name: str = "default") -> KnowledgeBase:
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise SuiteError(f"Knowledge base name {name!r} must be letters, digits, - or _ (at most 64).", field="kb")
    return KnowledgeBase.objects.get_or_create(name=name)[0]


def kb_get(*, name: str = "default") -> KnowledgeBase:
    try:
        return KnowledgeBase.objects.get(name=name)
    except KnowledgeBase.DoesNotExist:
        raise NotFound(f"No knowledge base named {name!r}.", field="kb") from None


def kb_touch(kb: KnowledgeBase) -> None:
    """Bump the revision so every process rebuilds its lexical index (and item texts) on its next query; the
    vectors have their own revision in the shared store."""
    KnowledgeBase.objects.filter(pk=kb.pk).update(revision=F("revision") + 1)
    kb.refresh_from_db(fields=["revision"])


# --- the rebuild's lease: one full rebuild at a time, and a killed one does not stay "building" ----------------

def kb_lease_claim(*, kb: KnowledgeBase, owner: str) -> bool:
    """Mark the KB "building" under `owner` unless a live rebuild holds it; True only when this call changed the row.

    A KB "building" whose lease expired is a rebuild that died: it is taken over. No expiry at all means a lease
    that is held (rows from before leases were lapsed by their migration).
    """
    now = timezone.now()
    free = ~Q(index_state="building") | Q(index_lease_expires_at__lt=now)
    return KnowledgeBase.objects.filter(free, pk=kb.pk).update(
        index_state="building", index_progress=0.0, index_message="", index_lease_owner=owner,
        index_lease_expires_at=now + timedelta(seconds=settings.SUPPORT_INDEX_LEASE_S)) == 1


def kb_lease_renew(*, kb: KnowledgeBase, owner: str) -> None:
    """Push the lease's expiry forward; SuiteError when another rebuild took the KB over (this one must stop)."""
    renewed = KnowledgeBase.objects.filter(pk=kb.pk, index_state="building", index_lease_owner=owner).update(
        index_lease_expires_at=timezone.now() + timedelta(seconds=settings.SUPPORT_INDEX_LEASE_S))
    if renewed != 1:
        raise SuiteError(f"The rebuild of {kb.name!r} lost its lease to another rebuild.", field="kb")


def kb_lease_end(*, kb: KnowledgeBase, owner: str, state: str, **fields: object) -> bool:
    """Close our rebuild (ready or failed) and drop the lease; False when another rebuild holds the KB now."""
    return KnowledgeBase.objects.filter(pk=kb.pk, index_lease_owner=owner).update(
        index_state=state, index_lease_owner="", index_lease_expires_at=None, **fields) == 1


def kb_rebuilding(kb: KnowledgeBase) -> bool:
    """True while a rebuild holds a live lease on the KB (no expiry at all counts as held)."""
    expires = kb.index_lease_expires_at
    return kb.index_state == "building" and (expires is None or expires >= timezone.now())


def kb_index_state(kb: KnowledgeBase) -> tuple[str, str]:
    """(state, message) of a KB's vectors as pages show it.

    1. A "building" KB whose lease lapsed has failed; a live rebuild and a failed one say what their row says.
    2. Otherwise the shared vectors speak for themselves: "ready" with their count, what a worker still has to
       embed and an encoder switch under way; "empty" before anything was imported.
    """
    if kb.index_state == "building" and not kb_rebuilding(kb):
        return "failed", "the rebuild stopped before finishing (its lease lapsed); start a new one"
    if kb.index_state in ("building", "failed"):
        return kb.index_state, kb.index_message
    from apps.vectors.models import VectorSpace

    if not VectorSpace.objects.filter(name=kb_space(kb)).exists():
        return "empty", ""
    return "ready", kb_vectors_message(kb=kb, status=space_status(space=kb_space(kb)))


# --- items: what gets embedded and searched ---------------------------------------------------------------

def item_id(row: FaqEntry | Passage) -> int:
    return row.pk * 2 if isinstance(row, FaqEntry) else row.pk * 2 + 1


def faq_dense_text(faq: FaqEntry) -> str:
    return faq.question  # customers ask questions: question-to-question similarity is the sharpest signal


def faq_lexical_text(faq: FaqEntry) -> str:
    return f"{faq.title} {faq.question} {faq.answer}"


def passage_text(passage: Passage) -> str:
    return passage_text_of(title=passage.title, text=passage.text)


def passage_text_of(*, title: str, text: str) -> str:
    return f"{title}. {text}"


# --- the vectors: one shared space per KB (services.vectors; the database holds them, every process reads them) --

SPACE_PREFIX = "support"


def kb_space(kb: KnowledgeBase) -> str:
    """The shared vector space of a KB: "support:<kb pk>", keyed by item_id."""
    return f"{SPACE_PREFIX}:{kb.pk}"


def _space_kb_pk(space: str) -> int:
    prefix, _, pk = space.partition(":")
    if prefix != SPACE_PREFIX or not pk.isdigit():
        raise SuiteError(f"{space!r} is not a knowledge base's vector space (support:<kb id>).", field="space")
    return int(pk)


def embed_task() -> str | None:
    """The task whose champion embeds a KB that chose none (SUPPORT_EMBED_TASK), None for the default base."""
    return settings.SUPPORT_EMBED_TASK or None


def _source_task(space: str) -> str | None:
    """The vector store asks which task embeds a KB's space (on creation, a promotion, the beat's encoder check): the
    KB's own `embed_task`, else SUPPORT_EMBED_TASK; None: the default base."""
    chosen = KnowledgeBase.objects.filter(pk=_space_kb_pk(space)).values_list("embed_task", flat=True).first()
    return chosen or embed_task()


def embed_task_check(task: str) -> str:
    """`task` stripped when it may embed a KB ("" = the default: SUPPORT_EMBED_TASK, else the base); SuiteError
    naming the field otherwise.

    A KB is embedded by a `pairs` task's champion (an embedding tuned for search: `retrieval`), so the name must be a
    pairs task of the registry or of a retraining plug-in (one that has not trained a version yet still counts: the
    KB keeps the base until its first champion, then is re-embedded).
    """
    from apps.registry.models import Task
    from services.registry.retraining import retrainers

    task = (task or "").strip()
    if not task:
        return ""
    pairs = {row.name for row in Task.objects.filter(kind=Task.KIND_PAIRS)}
    pairs |= {name for name, plugin in retrainers().items() if plugin.kind == Task.KIND_PAIRS}
    if task in pairs:
        return task
    known = ", ".join(sorted(pairs)) or "none"
    row = Task.objects.filter(name=task).first()
    if row is not None:
        raise SuiteError(f"Task {task!r} is a {row.kind} task; a knowledge base is embedded by a pairs task's champion "
                         f"({known}).", field="embed_task")
    raise SuiteError(f"No pairs task named {task!r} can embed a knowledge base (pairs tasks: {known}).",
                     field="embed_task")


def kb_embed_task_set(*, kb: KnowledgeBase, task: str) -> dict:
    """Choose the task whose champion embeds `kb` ("" = the default) and re-embed the KB when its encoder changes.

    1. The name is checked (`embed_task_check`) before anything is stored.
    2. The KB's space gets the task's encoder as pending (`encoder_switch_check`): a worker (or this process with
       SUITE_VECTORS_EMBED=process) embeds every item beside the old vectors, and the space switches once complete;
       questions are embedded by the encoder of the vectors they search, so they follow at the switch. A task
       without a champion yet keeps the base, and its first promotion re-embeds the KB.
    3. Returns {"kb", "embed_task", "encoder" (the one questions meet now), "pending_encoder"}.
    """
    from services.vectors import encoder_switch_check

    task = embed_task_check(task)
    KnowledgeBase.objects.filter(pk=kb.pk).update(embed_task=task)
    kb.embed_task = task
    space_ensure(name=kb_space(kb))
    # Not in one transaction with the update: in `process` mode this embeds the whole KB. Should it fail, the row
    # already names the task and the beat's encoder check (vectors.encoder_check) asks for the switch again.
    encoder_switch_check(space=kb_space(kb))
    status = space_status(space=kb_space(kb))
    return {"kb": kb.name, "embed_task": task or None, "encoder": status["encoder"],
            "pending_encoder": status["pending_encoder"]}


def _source_texts(space: str, keys: Sequence[int]) -> list[tuple[int, str, str]]:
    """(item id, dense text, its hash) of the given items that still exist."""
    kb_pk = _space_kb_pk(space)
    keys = list(keys)
    faqs = FaqEntry.objects.filter(kb_id=kb_pk, pk__in=[k // 2 for k in keys if k % 2 == 0]).only("pk", "question")
    passages = Passage.objects.filter(kb_id=kb_pk, pk__in=[k // 2 for k in keys if k % 2 == 1]).only("pk", "title", "text")
    out = []
    for row in [*faqs.order_by("pk"), *passages.order_by("pk")]:
        text = faq_dense_text(row) if isinstance(row, FaqEntry) else passage_text(row)
        out.append((item_id(row), text, text_hash(text)))
    return out


def _source_keys(space: str) -> Iterator[tuple[int, str]]:
    """Every (item id, hash of its dense text) of the KB: what should have a vector."""
    kb_pk = _space_kb_pk(space)
    for pk, question in FaqEntry.objects.filter(kb_id=kb_pk).order_by("pk").values_list("pk", "question").iterator():
        yield pk * 2, text_hash(question)  # faq_dense_text is the question
    rows = Passage.objects.filter(kb_id=kb_pk).order_by("pk").values_list("pk", "title", "text").iterator()
    for pk, title, text in rows:
        yield pk * 2 + 1, text_hash(passage_text_of(title=title, text=text))


def _source_count(space: str) -> int:
    """How many items of the KB should have a vector (two counts: a view's "missing" without scanning every row)."""
    kb_pk = _space_kb_pk(space)
    return FaqEntry.objects.filter(kb_id=kb_pk).count() + Passage.objects.filter(kb_id=kb_pk).count()


def source_install() -> None:
    """Tell the vector store how to read the KBs' texts (apps.support's ready(): every web and worker process)."""
    source_register(SPACE_PREFIX, TextSource(task=_source_task, texts=_source_texts, keys=_source_keys,
                                             count=_source_count))


def kb_vectors_update(*, kb: KnowledgeBase, changed: list[int], removed: list[int],
                      progress: Progress | None = None) -> None:
    """After the KB's rows were written: removed items leave the vectors now, changed ones are (re-)embedded.

    1. Removed items are tombstoned at once (in the caller's transaction when there is one).
    2. Changed items: embedded on a worker (SUITE_VECTORS_EMBED=worker) or here; until then they are found by
       their words only. A batch job that follows a progress bar embeds them here when embedding runs in process.
    3. The KB's revision moves, so every process rebuilds its lexical index on its next query.
    """
    space = kb_space(kb)
    space_ensure(name=space)
    if removed:
        vectors_delete(space=space, keys=removed)
    if changed:
        if progress is not None and settings.SUITE_VECTORS_EMBED == "process":
            vectors_embed(space=space, keys=changed, progress=progress)
        else:
            vectors_request(space=space, keys=changed)
    kb_touch(kb)
    KnowledgeBase.objects.filter(pk=kb.pk).exclude(index_state="building").update(
        index_state="ready", index_progress=1.0, index_message="")


def kb_vectors_embed(*, kb: KnowledgeBase, progress: Progress | None = None) -> dict:
    """Re-embed whatever of the KB is missing or stale under its encoder(s), here (the full rebuild's work).

    1. Every item whose stored vector is missing or was made from another text is embedded (unchanged ones are
       kept: their vectors are already right); vectors of items that are gone are removed.
    2. Returns the space's status: {"revision", "encoder", "pending_encoder", "count", "missing", "progress"}.
    """
    space = kb_space(kb)
    space_ensure(name=space)
    vectors_embed(space=space, keys=None, progress=progress)
    return space_status(space=space)


def kb_vectors_repair() -> dict[str, int]:
    """Embed what is missing or stale in every KB (the beat's `support.vectors_repair`, every SUPPORT_EMBED_REPAIR_S).

    A host killed between writing rows and asking for their vectors leaves them to be found by their words only;
    this catches them up. A KB under a live rebuild is left to it.
    """
    out = {"kbs": 0, "embedded": 0}
    for kb in KnowledgeBase.objects.order_by("pk"):
        if kb_rebuilding(kb):
            continue
        space_ensure(name=kb_space(kb))
        out["embedded"] += vectors_embed(space=kb_space(kb), keys=None)
        out["kbs"] += 1
    return out


def kb_vectors_kind(kb: KnowledgeBase) -> str:
    """ "ivf" when a worker trained the KB's large index (a snapshot), else "flat" (exact search)."""
    from apps.vectors.models import VectorSpace

    snapshot = VectorSpace.objects.filter(name=kb_space(kb)).values_list("snapshot", flat=True).first()
    return "ivf" if snapshot else "flat"


def kb_vectors_message(*, kb: KnowledgeBase, status: dict) -> str:
    """What the console says of a KB's vectors: "8 items, flat", then what a worker still has to embed."""
    message = f"{status['count']} items, {kb_vectors_kind(kb)}"
    if status.get("missing"):
        message += f"; {status['missing']} waiting for vectors (found by their words meanwhile)"
    if status.get("pending_encoder"):
        message += f"; re-embedding for {status['pending_encoder']} ({status.get('progress') or 0:.0%})"
    return message


# --- import -----------------------------------------------------------------------------------------------

def faq_upsert(*, kb: KnowledgeBase, row: FaqRow, source: str) -> tuple[str, FaqEntry]:
    """("added" | "updated" | "unchanged", entry); identity is the normalised question."""
    found = FaqEntry.objects.filter(kb=kb, key=row.key).first()
    if found is not None and found.content_hash == row.content_hash:
        return "unchanged", found
    values = {"question": row.question, "answer": row.answer, "intent": row.intent, "url": row.url,
              "title": row.title or row.question[:300], "content_hash": row.content_hash, "source": source}
    if found is None:
        return "added", FaqEntry.objects.create(kb=kb, key=row.key, **values)
    for name, value in values.items():
        setattr(found, name, value)
    found.save()
    return "updated", found


def faq_import(*, kb: KnowledgeBase, path: Path, report: ImportReport, changed: list[int], removed: list[int],
               prune: bool = False, progress: Progress | None = None) -> None:
    """Upsert every good row; with `prune`, entries imported from this file name that it no longer holds are removed."""
    read = faq_read(path=path)
    report.errors += read.errors
    with transaction.atomic():
        for done, row in enumerate(read.rows, start=1):
            outcome, entry = faq_upsert(kb=kb, row=row, source=path.name)
            setattr(report, outcome, getattr(report, outcome) + 1)
            if outcome != "unchanged":
                changed.append(item_id(entry))
            if progress:
                progress(done, len(read.rows))
        if prune and read.errors:  # a row with a typo would look deleted: fix the file first
            report.errors.append(f"{path.name}: nothing pruned because the file has bad rows.")
        elif prune:
            gone = FaqEntry.objects.filter(kb=kb, source=path.name).exclude(key__in=[row.key for row in read.rows])
            removed += [item_id(entry) for entry in gone]
            gone.delete()


def document_import(*, kb: KnowledgeBase, path: Path, source: str, report: ImportReport,
                    changed: list[int], removed: list[int]) -> None:
    """One document: unchanged file → nothing; changed → passages updated in place by position, extras removed."""
    raw = path.read_bytes()
    content_hash = text_hash(raw.hex()) if path.suffix.lower() == ".pdf" else text_hash(raw.decode("utf-8", "replace"))
    found = Document.objects.filter(kb=kb, source=source).first()
    if found is not None and found.content_hash == content_hash:
        report.unchanged += 1
        return
    title, chunks = document_split(path=path)
    if not chunks:
        raise SuiteError(f"{path.name}: no text found.", field="docs")
    with transaction.atomic():
        if found is None:
            document = Document.objects.create(kb=kb, source=source, title=title[:300], content_hash=content_hash)
            report.added += 1
        else:
            document = found
            document.title, document.content_hash = title[:300], content_hash
            document.save()
            report.updated += 1
        existing = {p.ordinal: p for p in document.passages.all()}
        for ordinal, chunk in enumerate(chunks):
            passage = existing.pop(ordinal, None)
            if passage is not None and passage.content_hash == chunk.content_hash:
                continue
            if passage is None:
                passage = Passage(kb=kb, document=document, ordinal=ordinal)
            passage.title, passage.location, passage.text = chunk.title[:300], chunk.location[:200], chunk.text
            passage.content_hash = chunk.content_hash
            passage.save()
            changed.append(item_id(passage))
        for passage in existing.values():
            removed.append(item_id(passage))
            passage.delete()


def docs_import(*, kb: KnowledgeBase, path: Path, report: ImportReport, changed: list[int], removed: list[int],
                prune: bool = False, progress: Progress | None = None) -> None:
    """A file or every supported file under a folder; a bad file is reported and skipped.

    With `prune` (folders only), documents of the KB whose file is no longer in the folder are removed.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        root = path
    elif path.is_file():
        files, root = [path], path.parent
    else:
        raise SuiteError(f"{path} does not exist.", field="docs")
    for done, file in enumerate(files, start=1):
        try:
            document_import(kb=kb, path=file, source=str(file.relative_to(root)), report=report, changed=changed, removed=removed)
        except SuiteError as exc:
            report.errors.append(exc.message)
        if progress:
            progress(done, len(files))
    if prune and path.is_dir():
        seen = {str(file.relative_to(root)) for file in files}
        with transaction.atomic():
            for document in Document.objects.filter(kb=kb).exclude(source__in=seen):
                removed += [item_id(passage) for passage in document.passages.all()]
                document.delete()


def kb_import(*, kb_name: str = "default", faq: Path | None = None, docs: Path | None = None, prune: bool = False,
              progress: Progress | None = None) -> ImportReport:
    """Import FAQ and/or documents into a KB, then bring its vectors in step with what changed.

    A KB whose vectors are incomplete (a new space, an embedding that never ran) gets the missing ones too.
    """
    if faq is None and docs is None:
        raise SuiteError("Give a FAQ file, a documents folder, or both.")
    kb = kb_ensure(name=kb_name)
    report, changed, removed = ImportReport(), [], []
    if faq is not None:
        if not faq.is_file():
            raise SuiteError(f"{faq} does not exist.", field="faq")
        faq_import(kb=kb, path=faq, report=report, changed=changed, removed=removed, prune=prune, progress=progress)
    if docs is not None:
        docs_import(kb=kb, path=docs, report=report, changed=changed, removed=removed, prune=prune, progress=progress)
    report.removed = len(removed)
    if changed or removed:
        kb_vectors_update(kb=kb, changed=changed, removed=removed, progress=progress)
    elif space_status(space=space_ensure(name=kb_space(kb)).name)["missing"]:  # e.g. a KB from before shared vectors
        if settings.SUITE_VECTORS_EMBED == "process":
            kb_vectors_embed(kb=kb, progress=progress)
        else:  # only the keys whose stored hash differs are embedded
            vectors_request(space=kb_space(kb), keys=[key for key, _ in _source_keys(kb_space(kb))])
    return report


def item_delete(*, kb: KnowledgeBase, rows: list[FaqEntry | Passage]) -> None:
    """Delete FAQ entries or passages and tombstone their vectors, in one transaction."""
    ids = [item_id(row) for row in rows]
    with transaction.atomic():
        for row in rows:
            row.delete()
        kb_vectors_update(kb=kb, changed=[], removed=ids)


def faq_add(*, kb: KnowledgeBase, question: str, answer: str, title: str, intent: str = "", url: str = "") -> FaqEntry:
    """One FAQ entry from the console ("add to knowledge base"): found by its words at once, by meaning once embedded.

    1. The agent wrote or confirmed the question and the title: customers see the title as the answer's source and
       the question shapes what it matches, so neither may fall back to a customer's words. Each is required.
    2. Question, title and answer are masked (e-mails, IBANs, cards, phones) before they are stored.
    """
    from services.support.masking import text_mask

    for name, value in (("question", question), ("title", title), ("answer", answer)):
        if not value.strip():
            raise SuiteError(f"`{name}` is required: write it as every customer may read it.", field=name)
    if len(title.strip()) > 300:
        raise SuiteError("`title` is longer than 300 characters.", field="title")
    row = FaqRow(question=text_mask(text=question.strip()), answer=text_mask(text=answer.strip()), intent=intent.strip(),
                 url=url.strip(), title=text_mask(text=title.strip()))
    _, entry = faq_upsert(kb=kb, row=row, source="console")
    kb_vectors_update(kb=kb, changed=[item_id(entry)], removed=[])
    return entry


__all__ = [
    "DOC_SUFFIXES",
    "ImportReport",
    "faq_add",
    "item_delete",
    "embed_task_check",
    "item_id",
    "kb_embed_task_set",
    "kb_ensure",
    "kb_get",
    "kb_import",
    "kb_index_state",
    "kb_lease_claim",
    "kb_lease_end",
    "kb_lease_renew",
    "kb_rebuilding",
    "kb_space",
    "kb_vectors_embed",
    "kb_vectors_repair",
    "kb_vectors_update",
    "source_install",
]
