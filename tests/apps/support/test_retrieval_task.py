"""The `retrieval` task: a pairs adapter tuned on the knowledge bases' material, trained and gated against the untuned
base by the retraining loop, and chosen per knowledge base (its items and questions embedded by its champion)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from apps.registry.models import Alias, RetrainRun, Task
from apps.support.models import Feedback, KnowledgeBase, KnowledgeGap
from apps.vectors.models import VectorSpace
from services.registry.retraining import retrainer_get
from services.support import conversations, rerank, retrieval_task
from services.support.knowledge import _source_texts, kb_ensure, kb_space
from services.support.rerank import RELEVANT, RerankPair, material_split
from services.support.retraining import RetrievalData
from services.support.retrieval import kb_search
from services.support.retrieval_task import dense_metrics, item_dense_text, kb_positive_pairs, retrieval_split
from services.vectors import encode
from services.vectors.store import vectors_stored
from tests.helpers import run_json
from tests.services.conftest import ITEM_WORDS, QUERY_WORDS, pair_rows

pytestmark = pytest.mark.django_db


def test_material_pairs_are_queries_and_the_text_the_kbs_vectors_are_made_of(fixture_kb) -> None:  # noqa: ANN001
    kb = kb_ensure(name="default")
    items = kb_search(kb=kb).items
    stored = {key: text for key, text, _ in _source_texts(kb_space(kb), list(items))}
    assert all(item_dense_text(item) == stored[key] for key, item in items.items())  # what the KB embeds
    pairs = kb_positive_pairs(kb=kb)
    passages = [i for i in items.values() if i.kind == "passage"]
    # Each passage title -> its passage; an FAQ question -> its entry is the same text twice (an FAQ is embedded by
    # its question): it teaches nothing and is left out.
    assert {(p.query, p.item_id) for p in pairs} == {(i.title, i.id) for i in passages}
    assert all(p.label == RELEVANT and p.text == stored[p.item_id] and p.kb == kb.pk for p in pairs)
    train, held = retrieval_split(feedback=[], max_pairs=10_000)
    assert (train, held) == material_split(pairs, max_pairs=10_000)  # rerank's split: the same held-back queries


def test_relevant_feedback_becomes_a_pair_of_the_customers_words_and_the_items_text(
        fixture_kb, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    kb = kb_ensure(name="default")
    shipped = conversations.message_receive(kb=kb, token=None, text="Do you ship abroad to Norway?")
    conversations.feedback_record(message=shipped.reply, kind=Feedback.WRONG)  # wrong: no pair for retrieval
    gap = KnowledgeGap.objects.get(message=shipped.question)
    conversations.gap_add_to_kb(gap=gap, answer="We ship to Norway in 3 days.", question="Do you ship to Norway?",
                                title="Norway")
    norway = next(i for i in kb_search(kb=kb).items.values() if i.question == "Do you ship to Norway?")
    examples = retrainer_get("retrieval").feedback()
    assert [(e.text, e.label, e.source) for e in examples] == [("Do you ship abroad to Norway?", str(norway.id), "gap_added")]
    data = RetrievalData()
    rows = [p for p in data.train + data.held if p.source == "gap_added"]
    assert [(p.query, p.text, p.kb) for p in rows] == [("Do you ship abroad to Norway?", "Do you ship to Norway?", kb.pk)]

    # A run reads the feedback pairs once: its data is built from the examples the run collected.
    reads = []
    read = retrieval_task.feedback_pairs
    for module in (retrieval_task, rerank):  # both names it may be read by
        monkeypatch.setattr(module, "feedback_pairs", lambda **kw: reads.append(1) or read(**kw))
    plugin = retrainer_get("retrieval")
    run_data = plugin.data(task_row=plugin.task_ensure(), feedback=plugin.feedback(), until=timezone.now())
    assert len(reads) == 1 and (run_data.train, run_data.held) == (data.train, data.held)


def test_dense_metrics_rank_each_held_back_query_among_its_kbs_items() -> None:
    vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0], "x": [1.0, 0.0], "y": [0.6, 0.8], "z": [0.0, 1.0]}
    held = [RerankPair(query="a", item_id=1, label=RELEVANT, source="kb_passage", text="x", kb=7),
            RerankPair(query="b", item_id=2, label=RELEVANT, source="kb_passage", text="y", kb=7)]
    candidates = {7: [(1, "x"), (2, "y"), (3, "z")]}
    found = dense_metrics(embed=lambda texts: np.array([vectors[t] for t in texts]), held=held, candidates=candidates, k=1)
    # a: x first (1); b: z (1.0) beats y (0.8): rank 2, past k=1 → 0; recall@1 likewise
    assert found == {"mrr_at_1": 0.5, "recall_at_1": 0.5, "n_queries": 2}
    assert dense_metrics(embed=lambda texts: np.array([vectors[t] for t in texts]), held=held,
                         candidates=candidates)["mrr_at_10"] == 0.75


def _guides(folder: Path) -> Path:
    """Four documents of 12 sections each: the heading `askK` over the text `itemK ...` (a mapping the tiny BERT
    can learn), so passage titles are queries whose passages share no word with them."""
    folder.mkdir()
    for d in range(4):
        sections = [f"## {QUERY_WORDS[k]}\n\n{ITEM_WORDS[k]} plan board {['new', 'year', 'today', 'market'][d]}\n"
                    for k in range(len(QUERY_WORDS))]
        (folder / f"guide{d}.md").write_text(f"# guide {d}\n\n" + "\n".join(sections), encoding="utf-8")
    return folder


@pytest.mark.django_db(transaction=True)
def test_a_retrieval_run_trains_pairs_and_is_served_only_when_it_beats_the_base(tiny_encoder, tmp_path: Path,  # noqa: ANN001
                                                                                 settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.retrain import retrain_run
    from services.ml.artifacts import artifact_info

    settings.RETRAIN_EPOCHS = 2
    run_json("support_import", docs=str(_guides(tmp_path / "guides")), no_progress=True)
    assert Task.objects.filter(name="retrieval").count() == 0
    data = RetrievalData()
    assert len(data.held) >= 5 and len(data.train) >= 30

    # A base nothing can beat: the version is registered and judged, not served.
    monkeypatch.setattr(RetrievalData, "_base_figures", lambda self, **_: {"base_mrr_at_10": 2.0, "base_recall_at_10": 1.0})
    refused = retrain_run(task="retrieval", force=True)
    assert refused.status == RetrainRun.REJECTED and not refused.promoted, refused.reason
    assert "baseline gate" in refused.reason and "does not beat the untuned base encoder" in refused.reason
    assert Task.objects.get(name="retrieval").kind == Task.KIND_PAIRS
    assert artifact_info(refused.version.path).kind == Task.KIND_PAIRS  # a bi-encoder adapter, no head
    assert refused.n_examples == len(data.train) and refused.metrics["n_held_back_pairs"] == len(data.held)
    assert not Alias.objects.filter(task__name="retrieval", name="champion").exists()

    monkeypatch.undo()  # the real base figures: served exactly when its held-back MRR beats the base's
    settings.RETRAIN_EPOCHS = 2
    real = retrain_run(task="retrieval", force=True)
    metrics = real.metrics
    assert {"mrr_at_10", "recall_at_10", "base_mrr_at_10", "base_recall_at_10"} <= set(metrics)
    assert metrics["n_queries"] == len({p.query for p in data.held})
    beats = metrics["mrr_at_10"] > metrics["base_mrr_at_10"]
    assert real.promoted is beats, (real.reason, metrics)
    assert Alias.objects.filter(task__name="retrieval", name="champion").exists() is beats

    # Tuned harder (askK -> itemK is learnable: every K has sections in training), it beats the base and is served.
    plain = RetrievalData.train_file

    def harder(self, *, folder):  # noqa: ANN001, ANN202
        path, n, overrides = plain(self, folder=folder)
        return path, n, {**overrides, "config": {"lr": 1e-2, "eval_start": False}}

    monkeypatch.setattr(RetrievalData, "train_file", harder)
    settings.RETRAIN_EPOCHS = 6
    kb = kb_ensure(name="default")
    run_json("support_kb_encoder", kb="default", task="retrieval")
    tuned = retrain_run(task="retrieval", force=True)
    assert tuned.metrics["mrr_at_10"] > tuned.metrics["base_mrr_at_10"] == metrics["base_mrr_at_10"]  # the same base
    assert tuned.status == RetrainRun.PROMOTED and tuned.promoted, (tuned.reason, tuned.metrics)
    assert Alias.objects.get(task__name="retrieval", name="champion").version == tuned.version
    # Its promotion re-embedded the KB that chose the task (in process here; on a worker in production).
    assert VectorSpace.objects.get(name=kb_space(kb)).encoder == f"retrieval:v{tuned.version.version}"


def _spy_query_tags(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    real, calls = encode.texts_embed_tagged, []

    def spy(*, tag, texts, progress=None):  # noqa: ANN001, ANN202
        calls.append((tag.name, tuple(texts)))
        return real(tag=tag, texts=texts, progress=progress)

    monkeypatch.setattr(encode, "texts_embed_tagged", spy)
    return calls


@pytest.mark.django_db(transaction=True)  # the runtime resolves versions on its batcher's thread
def test_a_kb_set_to_retrieval_is_embedded_and_searched_by_its_champion_and_another_keeps_the_base(
        tiny_encoder, kb_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from pipelines.training import TrainRequest, adapter_train
    from services.ml.artifacts import artifact_runtime
    from services.registry.versions import task_ensure, version_get
    from tests.helpers import csv_write

    run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), kb="shop", no_progress=True)
    run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), no_progress=True)
    shop, default = kb_ensure(name="shop"), kb_ensure(name="default")
    # A bad name changes nothing: an unknown task, a classifier task.
    with pytest.raises(CommandError, match="No pairs task named 'nope'.*retrieval"):
        run_json("support_kb_encoder", kb="shop", task="nope")
    task_ensure(name="intent", kind=Task.KIND_CLASSIFIER)
    with pytest.raises(CommandError, match="'intent' is a classifier task"):
        run_json("support_kb_encoder", kb="shop", task="intent")
    assert KnowledgeBase.objects.get(name="shop").embed_task == ""

    # Before `retrieval` has a champion a KB may choose it: it keeps the base until the first promotion.
    waiting = run_json("support_kb_encoder", kb="shop", task="retrieval")
    assert waiting == {"kb": "shop", "embed_task": "retrieval", "encoder": "base:tiny-bert", "pending_encoder": None}
    queries, items = pair_rows(60)
    summary = adapter_train(TrainRequest(task="retrieval", data=str(csv_write(tmp_path / "pairs.csv", queries, items)),
                                         text_col="text", label_col="label", epochs=2, config={"eval_start": False, "lr": 1e-2}),
                            progress=False)
    assert summary["kind"] == Task.KIND_PAIRS and summary["champion"]  # the plug-in's kind, without --kind
    version = version_get(task_name="retrieval")
    # The promotion re-embedded the KB that chose the task (here, in process), and only that one.
    assert VectorSpace.objects.get(name=kb_space(shop)).encoder == "retrieval:v1"
    assert VectorSpace.objects.get(name=kb_space(default)).encoder == "base:tiny-bert"
    assert run_json("support_kb_encoder", kb="shop")["encoder"] == "retrieval:v1"

    runtime = artifact_runtime(folder=version.path, base_path=version.base.path)
    for kb, task in ((shop, "evaluate"), (default, None)):
        search = kb_search(kb=kb)
        keys = sorted(search.items)
        texts = [item_dense_text(search.items[key]) for key in keys]
        stored = vectors_stored(space=kb_space(kb), keys=keys)
        assert np.allclose(np.stack([stored[key] for key in keys]), runtime.embed(task=task, texts=texts), atol=1e-5)
    # (and the two encoders do differ: the adapter moved well past the tolerance above)
    assert np.abs(runtime.embed(task="evaluate", texts=texts) - runtime.embed(task=None, texts=texts)).max() > 1e-3

    calls = _spy_query_tags(monkeypatch)
    question = "How do I reset my password?"
    kb_search(kb=shop).candidates(text=question, n=3)
    kb_search(kb=default).candidates(text=question, n=3)
    assert calls == [("retrieval:v1", (question,)), ("base:tiny-bert", (question,))]  # each question as its KB's items

    cleared = run_json("support_kb_encoder", kb="shop", clear=True)  # back to the default: re-embedded by the base
    assert cleared["embed_task"] is None and cleared["encoder"] == "base:tiny-bert"


def test_the_kb_admin_checks_the_task_and_re_embeds_through_the_same_service(fixture_kb, client, role_users,  # noqa: ANN001
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from services.support import knowledge

    kb = KnowledgeBase.objects.get(name="default")
    client.force_login(role_users["admin"])
    calls = []
    real = knowledge.kb_embed_task_set
    monkeypatch.setattr(knowledge, "kb_embed_task_set", lambda *, kb, task: calls.append(task) or real(kb=kb, task=task))
    url = f"/admin/support/knowledgebase/{kb.pk}/change/"
    refused = client.post(url, {"name": "default", "embed_task": "nope"})
    assert refused.status_code == 200 and "No pairs task named &#x27;nope&#x27;" in refused.content.decode()
    assert KnowledgeBase.objects.get(pk=kb.pk).embed_task == "" and calls == []
    assert client.post(url, {"name": "default", "embed_task": "retrieval"}).status_code == 302
    assert KnowledgeBase.objects.get(pk=kb.pk).embed_task == "retrieval" and calls == ["retrieval"]
    assert client.post(url, {"name": "default", "embed_task": "retrieval"}).status_code == 302
    assert calls == ["retrieval"]  # unchanged: nothing to re-embed


def test_the_export_writes_the_training_pairs_for_train_adapter_and_keeps_held_back_queries_out(bow_encoder,  # noqa: ANN001
                                                                                               tmp_path: Path) -> None:
    import csv

    run_json("support_import", docs=str(_guides(tmp_path / "guides")), no_progress=True)
    out = tmp_path / "pairs.csv"
    printed = run_json("support_training_export", task="retrieval", out=str(out))
    data = RetrievalData()
    with out.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["query", "item"] and rows[1:] == [[p.query, p.text] for p in data.train]
    assert printed == {"out": str(out), "rows": len(data.train), "rejected": len(data.held)} and data.train and data.held
    assert not {p.query for p in data.held} & {row[0] for row in rows[1:]}
