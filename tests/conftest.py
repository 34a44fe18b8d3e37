"""Shared fixtures: tiny LAReQA-format datasets written by hand, in several scripts.

The builder makes every structural feature of the real files visible in a few
lines: shared question ids across languages, sentence breaks into a context,
answers given by character offset. Nothing here is copied from the benchmark.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mlret.params import SourceParams

# One noun per language, each in its own script, so texts differ by language and position.
WORDS = {"en": "river", "ru": "река", "zh": "河流", "ar": "نهر", "el": "ποτάμι", "hi": "नदी"}
QUESTION_WORDS = {"en": "where", "ru": "где", "zh": "哪里", "ar": "أين", "el": "πού", "hi": "कहाँ"}


def sentence_text(lang: str, article: int, paragraph: int, sentence: int) -> str:
    return f"{WORDS[lang]} a{article} p{paragraph} s{sentence} ends here."


def _paragraph_json(
    lang: str, article: int, paragraph: int, n_sentences: int, qids: list[tuple[str, int]], bom: bool = False
) -> dict[str, Any]:
    """A paragraph whose ``qids`` are (id, answer sentence index) pairs."""
    sentences = [sentence_text(lang, article, paragraph, s) for s in range(n_sentences)]
    if bom:
        sentences[0] = "\ufeff" + sentences[0]
    context, breaks = "", []
    for s in sentences:
        if context:
            context += " "
        breaks.append([len(context), len(context) + len(s)])
        context += s
    qas = []
    for qid, answer_sentence in qids:
        start = breaks[answer_sentence][0] + len(WORDS[lang]) + 1  # the "a{article}" token
        qas.append(
            {
                "id": qid,
                "question": f"{QUESTION_WORDS[lang]}   a{article} p{paragraph} s{answer_sentence}?",
                "answers": [{"answer_start": start, "text": context[start : start + 3]}],
            }
        )
    return {"context": context, "sentences": sentences, "sentence_breaks": breaks, "qas": qas}


def _write_dataset(
    root: Path,
    name: str,
    langs: list[str],
    n_articles: int = 6,
    n_paragraphs: int = 2,
    n_sentences: int = 3,
    questions_per_paragraph: int = 2,
) -> SourceParams:
    """An XQuAD-R-like dataset: every language holds every question, parallel by position."""
    for lang in langs:
        articles = []
        for a in range(n_articles):
            paragraphs = []
            for p in range(n_paragraphs):
                qids = [(f"q{a}-{p}-{k}", k % n_sentences) for k in range(questions_per_paragraph)]
                paragraphs.append(_paragraph_json(lang, a, p, n_sentences, qids))
            articles.append({"title": f"{lang}-{a}", "paragraphs": paragraphs})
        _write_file(root / name / f"{lang}.json", {"version": "1.1", "data": articles})
    return _source_for(root, name, langs)


def _write_file(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def _source_for(root: Path, name: str, langs: list[str]) -> SourceParams:
    """SourceParams whose checksums and question counts describe the files as written."""
    sha, counts = {}, {}
    for lang in langs:
        path = root / name / f"{lang}.json"
        sha[lang] = hashlib.sha256(path.read_bytes()).hexdigest()
        payload = json.loads(path.read_text(encoding="utf-8"))
        counts[lang] = sum(len(p["qas"]) for a in payload["data"] for p in a["paragraphs"])
    return SourceParams(
        name=name, url="https://example.invalid/" + name + "/{lang}.json", sha256=sha, expected_questions=counts
    )


@pytest.fixture
def tiny_xquad(tmp_path: Path) -> tuple[Path, SourceParams]:
    """Three languages in three scripts, six articles, 24 questions per language."""
    return tmp_path, _write_dataset(tmp_path, "tiny-xquad", ["en", "ru", "zh"])


# ---------------------------------------------------------------------------
# A tiny but real checkpoint: random BertModel + WordLevel tokenizer, saved the real way,
# so tests exercise the same loading, encoding and training code as the e5 checkpoint.

TINY_WORDS = sorted(
    set(
        [
            *("query", "passage", ":", "the", "a", "cat", "dog", "sat", "on", "mat", "house", "river", "city"),
            *("le", "chat", "est", "sur", "tapis", "maison", "der", "hund", "ist", "im", "haus", "el", "perro"),
            *("en", "casa", "кошка", "собака", "дом", "река", "猫", "狗", "房子", "قطة", "كلب", "بيت"),
            *("ends", "here", ".", "?"),
        ]
    )
    | set(WORDS.values())
    | set(QUESTION_WORDS.values())
    | {f"{letter}{i}" for letter in "aps" for i in range(10)}
)
TINY_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(TINY_SPECIALS + TINY_WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )


def build_tiny_model(vocab_size: int):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def _save_tiny_checkpoint(path: Path) -> Path:
    tokenizer = build_tiny_tokenizer()
    build_tiny_model(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint directory; treat it as read-only (copy it to change it)."""
    return _save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint")


def _model_params(name: str = "unused", **overrides: object):
    from mlret.params import ModelParams

    values: dict[str, object] = dict(
        name=name,
        pooling="mean",
        query_prefix="query : ",
        passage_prefix="passage : ",
        max_query_length=16,
        max_passage_length=32,
        normalize=True,
        freeze_word_embeddings=True,  # as a folder's settings read back: encoding never reads it
    )
    values.update(overrides)
    return ModelParams(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_params():
    """ModelParams with e5-style prefixes (tokenisable by the tiny vocab) and short max lengths."""
    return _model_params


# ---------------------------------------------------------------------------
# A tiny benchmark in BEIR layout, one folder per language.

_BEIR_LANGS = {
    "en": {"title": "River", "text": "A river flows.", "q": "where does the river flow?"},
    "ru": {"title": "Река", "text": "Река течёт.", "q": "куда течёт река?"},
}


def _write_beir_language(root: Path, lang: str) -> Path:
    """Three docs (one without title, one with an empty title), three queries (one unjudged), graded qrels."""
    words = _BEIR_LANGS[lang]
    folder = root / lang
    (folder / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": f"{lang}-d1", "title": words["title"], "text": words["text"], "metadata": {}},
        {"_id": f"{lang}-d2", "text": "  no title here "},
        {"_id": f"{lang}-d3", "title": "", "text": words["text"] + " 2"},
    ]
    queries = [
        {"_id": f"{lang}-q1", "text": words["q"]},
        {"_id": f"{lang}-q2", "text": words["q"] + " 2"},
        {"_id": f"{lang}-q3", "text": "never judged"},
    ]
    _write_jsonl(folder / "corpus.jsonl", corpus)
    _write_jsonl(folder / "queries.jsonl", queries)
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        f"{lang}-q1\t{lang}-d1\t1\n"
        f"{lang}-q1\t{lang}-d3\t0\n"
        f"{lang}-q2\t{lang}-d2\t2\n"
        f"{lang}-q2\t{lang}-d2\t2\n",  # repeated identically: kept once
        encoding="utf-8",
    )
    return folder


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# The helpers above, as fixtures: test modules in any folder receive them as
# parameters (a conftest.py is not importable once several folders have their
# own). Each returns the helper itself; session-scoped, since helpers and
# constants hold no state.

HELPERS: dict[str, object] = {
    "write_dataset": _write_dataset,
    "paragraph_json": _paragraph_json,
    "write_file": _write_file,
    "source_for": _source_for,
    "save_tiny_checkpoint": _save_tiny_checkpoint,
    "write_beir_language": _write_beir_language,
    "write_jsonl": _write_jsonl,
    "beir_langs": _BEIR_LANGS,
    "model_params": _model_params,
}


def _helper_fixture(name: str, helper: object):
    @pytest.fixture(scope="session", name=name)
    def fixture() -> object:
        return helper

    return fixture


for _name, _helper in HELPERS.items():
    globals()[f"_{_name}_fixture"] = _helper_fixture(_name, _helper)


# More than half of the suite's time, in tests that share one pipeline repository.
END_TO_END_FILE = "tests/pipeline/test_end_to_end.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the end-to-end file first, the rest in their usual order.

    `make test` hands whole files to two workers in collection order: started first, the
    longest file runs on one worker while the other takes every other file; started last,
    it would run alone at the end.
    """
    items.sort(key=lambda item: not item.path.as_posix().endswith(END_TO_END_FILE))
