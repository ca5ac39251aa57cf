"""A sentence-transformers folder is embedded as sentence-transformers embeds it: pooling mode, length limit, prompt."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from services.errors import SuiteError
from services.ml.encoder import EncoderSpec, base_load, encoder_spec
from services.ml.runtime import AdapterRef, InferenceRuntime
from tests.services.conftest import sentiment_rows, tiny_base_write

TEXTS = sentiment_rows(24, seed=7)[0] + ["soars", "the company stock shares today market quarter board new plan ceo year rally"]


def no_adapters(task: str) -> object:
    raise AssertionError(f"no adapter is asked for ({task})")


def st_folder(folder: Path, *, pooling: dict, max_seq_length: int | None = None, normalize: bool = False,
              prompt: str | None = None, modules_extra: list[dict] | None = None) -> Path:
    """A tiny BERT saved as a sentence-transformers folder: modules.json, 1_Pooling/config.json, sentence_bert_config.json."""
    tiny_base_write(folder, seed=3)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    modules += modules_extra or []
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **pooling}))
    if max_seq_length is not None:
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}))
    if prompt is not None:
        (folder / "config_sentence_transformers.json").write_text(
            json.dumps({"prompts": {"query": prompt, "document": ""}, "default_prompt_name": "query"}))
    return folder


def st_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    """The normalised vectors of sentence-transformers itself (the reference)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return model.encode(texts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)


def suite_vectors(folder: Path, texts: list[str], **kwargs: object) -> np.ndarray:
    return InferenceRuntime(base_path=folder, resolver=no_adapters, device="cpu", max_batch=8, **kwargs).embed(task=None, texts=texts)


def test_a_cls_pooled_folder_gives_the_vectors_of_sentence_transformers(tmp_path: Path) -> None:
    folder = st_folder(tmp_path / "cls", pooling={"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    assert encoder_spec(folder).pooling == "cls"
    ours = suite_vectors(folder, TEXTS)
    np.testing.assert_allclose(ours, st_vectors(folder, TEXTS), atol=1e-5)
    mean = suite_vectors(tiny_base_write(tmp_path / "plain", seed=3), TEXTS)  # the same weights, mean-pooled
    assert not np.allclose(ours, mean, atol=1e-3)  # the comparison above can tell CLS from mean


def test_a_mean_pooled_folder_truncates_at_its_max_seq_length(tmp_path: Path) -> None:
    folder = st_folder(tmp_path / "mean6", pooling={"pooling_mode_mean_tokens": True}, max_seq_length=6, normalize=True)
    spec = encoder_spec(folder)
    assert (spec.pooling, spec.max_seq_length, spec.normalize) == ("mean", 6, True)
    ours = suite_vectors(folder, TEXTS)
    np.testing.assert_allclose(ours, st_vectors(folder, TEXTS), atol=1e-5)
    untruncated = suite_vectors(tiny_base_write(tmp_path / "plain", seed=3), TEXTS)  # same weights, 64 positions
    np.testing.assert_allclose(ours[-2], untruncated[-2], atol=1e-5)  # "soars" is short: the same vector
    assert not np.allclose(ours[-1], untruncated[-1], atol=1e-3)  # the long text is cut at 6 tokens


@pytest.mark.parametrize("mode", ["max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"])
def test_every_pooling_mode_matches_sentence_transformers(tmp_path: Path, mode: str) -> None:
    folder = st_folder(tmp_path / mode, pooling={"pooling_mode": mode})
    np.testing.assert_allclose(suite_vectors(folder, TEXTS), st_vectors(folder, TEXTS), atol=1e-5)


def test_a_default_prompt_left_out_of_the_pooling_matches_sentence_transformers(tmp_path: Path) -> None:
    folder = st_folder(tmp_path / "prompt", pooling={"pooling_mode": "mean", "include_prompt": False}, prompt="ask0 ask1 ")
    spec = encoder_spec(folder)
    assert spec.prompt == "ask0 ask1 " and spec.prompt_length == 3  # [CLS] ask0 ask1
    np.testing.assert_allclose(suite_vectors(folder, TEXTS), st_vectors(folder, TEXTS), atol=1e-5)


def test_a_plain_hugging_face_folder_is_mean_pooled_at_256_tokens_or_its_positions(tiny_base: Path) -> None:
    spec = encoder_spec(tiny_base)
    assert spec == EncoderSpec(max_seq_length=64)  # the tiny BERT has 64 positions, fewer than 256
    assert spec.pooling == "mean" and spec.source == "default"


@pytest.mark.parametrize(("pooling", "modules_extra", "file", "value"), [
    ({"pooling_mode": "attention"}, None, "config.json", "attention"),
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, None, "config.json", "cls + mean"),
    ({"pooling_mode_mean_tokens": True},
     [{"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}], "modules.json", "Dense"),
])
def test_a_folder_the_suite_cannot_honour_is_refused_naming_the_file_and_value(
        tmp_path: Path, pooling: dict, modules_extra: list | None, file: str, value: str) -> None:
    folder = st_folder(tmp_path / "odd", pooling=pooling, modules_extra=modules_extra)
    with pytest.raises(SuiteError, match=rf"{re.escape(file)}.*{re.escape(value)}") as caught:
        base_load(folder, fresh=True)
    assert str(folder) in caught.value.message
    runtime = InferenceRuntime(base_path=folder, resolver=no_adapters, device="cpu")
    with pytest.raises(SuiteError, match=re.escape(value)):
        runtime.embed(task=None, texts=["soars"])


def test_training_pools_as_the_folder_says(tmp_path: Path) -> None:
    """A classifier trained on a CLS folder is served CLS-pooled: the runtime's probabilities equal the in-memory model's."""
    from services.ml.artifacts import artifact_save, artifact_sha256
    from services.ml.encoder import encoder_spec_of, texts_prepare, texts_tokenize
    from services.ml.loop import ids_embed
    from services.ml.training import ClassifierConfig, classifier_train

    folder = st_folder(tmp_path / "cls", pooling={"pooling_mode_cls_token": True})
    texts, labels = sentiment_rows(90)
    config = ClassifierConfig(epochs=2, batch_size=16, lr=1e-2, max_length=16, val_fraction=0.2, lora_r=4, lora_alpha=8)
    result = classifier_train(base_path=folder, texts=texts, labels=labels, config=config, progress=False)
    assert result.encoder.pooling == "cls" and encoder_spec_of(result.model).pooling == "cls"
    artifact = tmp_path / "artifact"
    artifact_save(result=result, folder=artifact)
    assert json.loads((artifact / "artifact.json").read_text())["encoder"]["pooling"] == "cls"
    tokenizer = base_load(folder)[0]
    ids = texts_tokenize(tokenizer, texts_prepare(TEXTS, strip_urls=True), max_length=16)
    pooled = ids_embed(result.model, ids, pad_id=0, device=torch.device("cpu"), dtype=torch.float32,
                       normalize=config.head_normalize)
    expected = torch.softmax(result.head(pooled) / result.temperature, dim=-1).detach().numpy()  # served calibrated
    ref = AdapterRef(task="cls", version=1, path=str(artifact), sha256=artifact_sha256(artifact))
    served = InferenceRuntime(base_path=folder, resolver=lambda task: ref, device="cpu").classify(task="cls", texts=TEXTS)
    np.testing.assert_allclose(served.probs, expected, atol=1e-5)


@pytest.mark.django_db
def test_registering_a_base_the_suite_cannot_honour_is_refused(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from apps.registry.models import BaseModel

    settings.REGISTRY_DIR = tmp_path / "registry"
    folder = st_folder(tmp_path / "odd", pooling={"pooling_mode": "attention"})
    with pytest.raises(CommandError, match=r"1_Pooling/config.json.*attention"):
        call_command("registry_add_base", name="odd", path=str(folder))
    assert not BaseModel.objects.filter(name="odd").exists()


@pytest.mark.slow
def test_the_packaged_minilm_gives_the_vectors_of_sentence_transformers() -> None:
    from services.ml.encoder import default_base_path

    folder = default_base_path()
    spec = encoder_spec(folder)
    assert (spec.pooling, spec.max_seq_length, spec.normalize, spec.source) == ("mean", 256, True, "sentence-transformers")
    texts = TEXTS + ["Shares of the bank fell sharply after it cut its outlook for the year. " * 30]  # past 256 tokens
    np.testing.assert_allclose(suite_vectors(folder, texts), st_vectors(folder, texts), atol=1e-5)


def test_do_lower_case_lower_cases_for_a_cased_tokenizer(tmp_path: Path) -> None:
    from transformers import BertTokenizer

    from tests.services.conftest import VOCAB

    folder = st_folder(tmp_path / "lower", pooling={"pooling_mode": "mean"}, max_seq_length=32)
    BertTokenizer(vocab={word: i for i, word in enumerate(VOCAB)}, do_lower_case=False).save_pretrained(folder)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": True}))
    assert encoder_spec(folder).do_lower_case is True
    shouted = [text.upper() for text in TEXTS]
    ours = suite_vectors(folder, shouted)
    np.testing.assert_allclose(ours, st_vectors(folder, shouted), atol=1e-5)
    np.testing.assert_allclose(ours, suite_vectors(folder, TEXTS), atol=1e-6)  # upper case reads as lower case
