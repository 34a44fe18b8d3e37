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


def paragraph_json(lang: str, article: int, paragraph: int, n_sentences: int, qids: list[tuple[str, int]], bom: bool = False) -> dict[str, Any]:
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


def write_dataset(
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
                paragraphs.append(paragraph_json(lang, a, p, n_sentences, qids))
            articles.append({"title": f"{lang}-{a}", "paragraphs": paragraphs})
        write_file(root / name / f"{lang}.json", {"version": "1.1", "data": articles})
    return source_for(root, name, langs)


def write_file(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def source_for(root: Path, name: str, langs: list[str]) -> SourceParams:
    """SourceParams whose checksums and question counts describe the files as written."""
    sha, counts = {}, {}
    for lang in langs:
        path = root / name / f"{lang}.json"
        sha[lang] = hashlib.sha256(path.read_bytes()).hexdigest()
        payload = json.loads(path.read_text(encoding="utf-8"))
        counts[lang] = sum(len(p["qas"]) for a in payload["data"] for p in a["paragraphs"])
    return SourceParams(name=name, url="https://example.invalid/" + name + "/{lang}.json", sha256=sha, expected_questions=counts)


@pytest.fixture
def tiny_xquad(tmp_path: Path) -> tuple[Path, SourceParams]:
    """Three languages in three scripts, six articles, 24 questions per language."""
    return tmp_path, write_dataset(tmp_path, "tiny-xquad", ["en", "ru", "zh"])
