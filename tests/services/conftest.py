"""Fixtures for the ML core: a tiny BERT built in code and tiny synthetic data (seconds on a CPU, no downloads)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CLASS_WORDS = {
    "bullish": ["soars", "beats", "upgrade", "record", "rally", "surges"],
    "bearish": ["plunges", "misses", "downgrade", "loss", "slump", "cuts"],
    "neutral": ["announces", "schedules", "reports", "holds", "files", "names"],
}
FILLER = ["the", "company", "stock", "shares", "today", "market", "quarter", "board", "new", "plan", "ceo", "year"]
QUERY_WORDS = [f"ask{i}" for i in range(12)]
ITEM_WORDS = [f"item{i}" for i in range(12)]
VOCAB = SPECIALS + sorted({w for words in CLASS_WORDS.values() for w in words} | set(FILLER) | set(QUERY_WORDS) | set(ITEM_WORDS))


def tiny_base_write(folder: Path, *, seed: int = 0) -> Path:
    """Save a 2-layer BERT (hidden 32) and a WordPiece tokenizer over VOCAB into `folder`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    BertTokenizer(vocab={word: i for i, word in enumerate(VOCAB)}).save_pretrained(folder)
    return folder


def sentiment_rows(n: int, *, seed: int = 0) -> tuple[list[str], list[str]]:
    """Headline-like texts: two or three words of their class among one or two fillers."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = list(CLASS_WORDS)[i % 3]
        words = rng.sample(CLASS_WORDS[label], rng.randint(2, 3)) + rng.sample(FILLER, rng.randint(1, 2))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def pair_rows(n: int, *, seed: int = 0) -> tuple[list[str], list[str]]:
    """Queries 'askK + fillers' paired with the one item 'itemK ...' of the same K (an arbitrary mapping to learn)."""
    rng = random.Random(seed)
    queries, items = [], []
    for i in range(n):
        k = i % len(QUERY_WORDS)
        queries.append(" ".join([QUERY_WORDS[k], *rng.sample(FILLER, 2)]))
        items.append(f"{ITEM_WORDS[k]} plan")
    return queries, items


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_base_write(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def fast_config() -> object:
    from services.ml.training import ClassifierConfig

    # eval_start off: the serving tests built on it need an adapter that moved (not the untrained state returned)
    return ClassifierConfig(epochs=12, batch_size=16, lr=1e-2, head_lr=2e-2, max_length=16, val_fraction=0.2, patience=4,
                            lora_r=4, lora_alpha=8, eval_start=False)


@pytest.fixture(scope="session")
def classifier_artifacts(tiny_base: Path, fast_config: object, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Three classifier artifacts on the tiny base (different seeds and label sets): name -> (folder, sha256)."""
    from dataclasses import replace

    from services.ml.artifacts import artifact_save
    from services.ml.training import classifier_train

    out = {}
    texts, labels = sentiment_rows(180)
    two = [(t, lab) for t, lab in zip(texts, labels) if lab != "neutral"]
    datasets = {"news": (texts, labels, 1), "alerts": (texts, labels, 2), "binary": ([t for t, _ in two], [lab for _, lab in two], 3)}
    for name, (x, y, seed) in datasets.items():
        result = classifier_train(base_path=tiny_base, texts=x, labels=y, config=replace(fast_config, seed=seed), progress=False)
        folder = tmp_path_factory.mktemp(f"artifact-{name}")
        out[name] = (folder, artifact_save(result=result, folder=folder, source="synthetic.csv"))
    return out
