"""BEIR-layout loader: text rule, dropped queries, and one broken variant per error."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from mlret.data.beir import load_beir
from mlret.errors import MlretError


@pytest.fixture
def beir_root(tmp_path: Path, beir_langs, write_beir_language) -> Path:
    for lang in beir_langs:
        write_beir_language(tmp_path, lang)
    return tmp_path


@pytest.mark.parametrize("lang", ["en", "ru"])  # the languages of the `beir_langs` fixture
def test_loads_each_language(beir_root: Path, lang: str, beir_langs, caplog: pytest.LogCaptureFixture) -> None:
    words = beir_langs[lang]
    with caplog.at_level(logging.WARNING, logger="mlret.data.beir"):
        data = load_beir(beir_root / lang)
    assert data.corpus.to_dict("list") == {
        "doc_id": [f"{lang}-d1", f"{lang}-d2", f"{lang}-d3"],
        "text": [f"{words['title']} {words['text']}", "no title here", words["text"] + " 2"],
    }
    assert data.queries.to_dict("list") == {
        "query_id": [f"{lang}-q1", f"{lang}-q2"],
        "text": [words["q"], words["q"] + " 2"],
    }
    expected_qrels = pd.DataFrame(
        {
            "query_id": [f"{lang}-q1", f"{lang}-q1", f"{lang}-q2"],
            "doc_id": [f"{lang}-d1", f"{lang}-d3", f"{lang}-d2"],
            "relevance": [1, 0, 2],
        }
    )
    pd.testing.assert_frame_equal(data.qrels, expected_qrels)
    assert data.dropped_queries == 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert (
        caplog.records[0].getMessage().startswith("warning:")
        and "1 of 3 queries have no positive judgement" in caplog.text
    )


def test_query_judged_only_non_relevant_is_dropped_with_its_qrels(beir_root: Path) -> None:
    folder = beir_root / "en"
    with (folder / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write("en-q3\ten-d2\t0\n")
    data = load_beir(folder)
    assert data.dropped_queries == 1
    assert "en-q3" not in set(data.qrels["query_id"])


def test_numeric_ids_and_other_split(beir_root: Path, write_jsonl) -> None:
    folder = beir_root / "en"
    write_jsonl(folder / "corpus.jsonl", [{"_id": 7, "title": "T", "text": "x"}])
    write_jsonl(folder / "queries.jsonl", [{"_id": 1, "text": "q"}])
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n1\t7\t1\n", encoding="utf-8")
    data = load_beir(folder, split="dev")
    assert data.corpus["doc_id"].tolist() == ["7"] and data.qrels["query_id"].tolist() == ["1"]
    assert data.dropped_queries == 0


def _corpus_line(folder: Path, line: str) -> None:
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _qrels_line(folder: Path, line: str) -> None:
    with (folder / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


BROKEN = {
    "invalid JSON": (lambda f: _corpus_line(f, '{"_id": "x", "text": '), r"corpus.jsonl, line 5: not valid JSON"),
    "not an object": (lambda f: _corpus_line(f, '["x"]'), r"corpus.jsonl, line 5: expected a JSON object"),
    "missing _id": (lambda f: _corpus_line(f, '{"text": "t"}'), r"corpus.jsonl, line 5: field `_id` is missing"),
    "missing text": (lambda f: _corpus_line(f, '{"_id": "x"}'), r"corpus.jsonl, line 5: field `text` is missing"),
    "bad title": (
        lambda f: _corpus_line(f, '{"_id": "x", "title": 3, "text": "t"}'),
        r"corpus.jsonl, line 5: field `title` is 3",
    ),
    "duplicate id": (
        lambda f: _corpus_line(f, '{"_id": "en-d1", "text": "t"}'),
        r"corpus.jsonl, line 5: `_id` 'en-d1' already appears on line 1",
    ),
    "id with space": (
        lambda f: _corpus_line(f, '{"_id": "a b", "text": "t"}'),
        r"corpus.jsonl, line 5: field `_id` 'a b' is empty or contains whitespace",
    ),
    "query missing text": (
        lambda f: (f / "queries.jsonl").write_text('{"_id": "en-q1"}\n', encoding="utf-8"),
        r"queries.jsonl, line 1: field `text` is missing",
    ),
    "unknown query": (
        lambda f: _qrels_line(f, "en-q9\ten-d1\t1"),
        r"test.tsv, line 6: field `query-id` 'en-q9' is not in queries.jsonl",
    ),
    "unknown doc": (
        lambda f: _qrels_line(f, "en-q1\ten-d9\t1"),
        r"test.tsv, line 6: field `corpus-id` 'en-d9' is not in corpus.jsonl",
    ),
    "bad score": (
        lambda f: _qrels_line(f, "en-q1\ten-d2\thigh"),
        r"test.tsv, line 6: field `score` = 'high' is not an integer",
    ),
    "two fields": (lambda f: _qrels_line(f, "en-q1\ten-d2"), r"test.tsv, line 6: 2 tab-separated fields"),
    "conflicting judgement": (
        lambda f: _qrels_line(f, "en-q1\ten-d1\t2"),
        r"test.tsv, line 6: pair \(en-q1, en-d1\) judged 2 here but 1 on line 2",
    ),
    "no header": (
        lambda f: (f / "qrels" / "test.tsv").write_text("en-q1\ten-d1\t1\n", encoding="utf-8"),
        r"test.tsv, line 1: header is",
    ),
    "not UTF-8": (
        lambda f: (f / "queries.jsonl").write_bytes(b'{"_id": "en-q1", "text": "\xff"}\n'),
        r"queries.jsonl, line 1: not UTF-8",
    ),
    "missing qrels": (lambda f: (f / "qrels" / "test.tsv").unlink(), r"test.tsv: file not found"),
    "missing corpus": (lambda f: (f / "corpus.jsonl").unlink(), r"corpus.jsonl: file not found"),
    "nothing positive": (
        lambda f: (f / "qrels" / "test.tsv").write_text(
            "query-id\tcorpus-id\tscore\nen-q1\ten-d1\t0\n", encoding="utf-8"
        ),
        r"no judgement has a score above 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_input_names_file_line_and_field(beir_root: Path, case: str) -> None:
    break_it, message = BROKEN[case]
    folder = beir_root / "en"
    break_it(folder)
    with pytest.raises(MlretError, match=message) as info:
        load_beir(folder)
    assert info.value.fix  # every error says how to fix it
    load_beir(beir_root / "ru")  # the other language is untouched
