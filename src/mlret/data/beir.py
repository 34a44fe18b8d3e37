"""Read one language of a dataset in BEIR layout (one folder per language).

The folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``),
``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` (header
``query-id<TAB>corpus-id<TAB>score``). This module follows BEIR's own loader
and dense-retrieval encoder, so numbers stay comparable with published BEIR
results, without depending on the ``beir`` package (it pulls in heavy
dependencies for a few lines of parsing):

* **Document text** is ``(title + " " + text).strip()``, exactly what BEIR's
  ``SentenceBERT.encode_corpus`` feeds the encoder. A missing, null or empty
  title therefore gives the text alone (stripped). Query text is kept as is.
* **Evaluated queries** are those with at least one qrel of score > 0 in the
  split. BEIR's ``queries.jsonl`` holds the queries of every split, and a
  query judged only non-relevant cannot be scored, so the others are dropped,
  counted in :attr:`BeirDataset.dropped_queries`, and warned about. Their
  qrels rows go too, so queries and qrels cover the same ids.
* Qrels of score 0 for evaluated queries are kept (judged non-relevant).

What stops the load, with the file, line and field: a missing file, a line
that is not a JSON object, a missing or non-string ``_id``/``text``, an id
repeated within a file, a qrels header or row that is not three tab-separated
fields with an integer score, a qrels row naming a query or document absent
from the other files, and the same pair judged twice with different scores
(the same pair repeated with the same score is harmless and kept once).
Blank lines are skipped.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlret.errors import MlretError

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_HEADER = ["query-id", "corpus-id", "score"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeirDataset:
    """One language: tables in file order, ready for encoding and evaluation."""

    corpus: pd.DataFrame  # doc_id, text
    queries: pd.DataFrame  # query_id, text (judged queries only)
    qrels: pd.DataFrame  # query_id, doc_id, relevance (int)
    dropped_queries: int  # queries without a positive judgement, left out


def document_text(title: str, text: str) -> str:
    """BEIR's dense-retrieval document text: title and text joined by a space, stripped."""
    return (title + " " + text).strip()


def _fix(path: Path) -> str:
    return f"Fix or remove that line of {path.name}, or re-download the dataset."


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line."""
    if not path.is_file():
        raise MlretError(
            f"{path}: file not found.", "A BEIR folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv."
        )
    with path.open("rb") as handle:  # decoded line by line, so an encoding error has a line number too
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise MlretError(
                    f"{path}, line {number}: not UTF-8 ({err.reason} at byte {err.start}).",
                    "Re-encode the file as UTF-8.",
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise MlretError(
                    f"{path}, line {number}: not valid JSON ({err.msg}, column {err.colno}).", _fix(path)
                ) from None
            if not isinstance(obj, dict):
                raise MlretError(
                    f"{path}, line {number}: expected a JSON object, got {type(obj).__name__}.", _fix(path)
                )
            yield number, obj


def _string(obj: dict[str, Any], key: str, path: Path, number: int, optional: bool = False) -> str:
    value = obj.get(key)
    if value is None and optional:
        return ""
    if key == "_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # numeric ids: qrels carry them as text
    if not isinstance(value, str):
        problem = "is missing" if key not in obj else f"is {value!r}, not a string"
        raise MlretError(f"{path}, line {number}: field `{key}` {problem}.", _fix(path))
    if key == "_id" and (not value or any(c.isspace() for c in value)):
        raise MlretError(
            f"{path}, line {number}: field `_id` {value!r} is empty or contains whitespace.",
            "Ids must be non-empty and without spaces (TREC run format).",
        )
    return value


def _read_texts(path: Path, make_text: Any) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for number, obj in _jsonl(path):
        key = _string(obj, "_id", path, number)
        if key in seen:
            raise MlretError(
                f"{path}, line {number}: `_id` {key!r} already appears on line {seen[key]}.",
                "Ids must be unique; remove the duplicate.",
            )
        seen[key] = number
        ids.append(key)
        texts.append(make_text(obj, number))
    if not ids:
        raise MlretError(f"{path}: no entries.", "The file is empty; re-download the dataset.")
    return ids, texts


def _read_qrels(path: Path, query_ids: set[str], doc_ids: set[str]) -> pd.DataFrame:
    if not path.is_file():
        raise MlretError(
            f"{path}: file not found.", "A BEIR folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv."
        )
    try:
        return _parse_qrels(path, query_ids, doc_ids)
    except UnicodeDecodeError as err:
        raise MlretError(f"{path}: not UTF-8 ({err.reason}).", "Re-encode the file as UTF-8.") from None


def _parse_qrels(path: Path, query_ids: set[str], doc_ids: set[str]) -> pd.DataFrame:
    rows: dict[tuple[str, str], tuple[int, int]] = {}  # (query, doc) -> (score, line)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != QRELS_HEADER:
            raise MlretError(
                f"{path}, line 1: header is {header!r}, expected {QRELS_HEADER} (tab-separated).",
                "Add the BEIR header line `query-id<TAB>corpus-id<TAB>score`.",
            )
        for row in reader:
            number = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise MlretError(
                    f"{path}, line {number}: {len(row)} tab-separated fields, expected 3 (query-id, corpus-id, score).",
                    _fix(path),
                )
            query, doc, raw_score = (field.strip() for field in row)
            try:
                score = int(raw_score)
            except ValueError:
                raise MlretError(
                    f"{path}, line {number}: field `score` = {raw_score!r} is not an integer.", _fix(path)
                ) from None
            if query not in query_ids:
                raise MlretError(
                    f"{path}, line {number}: field `query-id` {query!r} is not in {QUERIES_FILE}.",
                    "The qrels and queries come from different versions; re-download the dataset.",
                )
            if doc not in doc_ids:
                raise MlretError(
                    f"{path}, line {number}: field `corpus-id` {doc!r} is not in {CORPUS_FILE}.",
                    "The qrels and corpus come from different versions; re-download the dataset.",
                )
            previous = rows.get((query, doc))
            if previous is not None and previous[0] != score:
                raise MlretError(
                    f"{path}, line {number}: pair ({query}, {doc}) judged {score} here "
                    f"but {previous[0]} on line {previous[1]}.",
                    "Keep one judgement per pair.",
                )
            rows.setdefault((query, doc), (score, number))
    if not rows:
        raise MlretError(f"{path}: no judgements.", "The qrels file is empty; re-download the dataset.")
    return pd.DataFrame(
        [(q, d, score) for (q, d), (score, _) in rows.items()], columns=["query_id", "doc_id", "relevance"]
    ).astype({"relevance": "int64"})


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Load one BEIR-layout folder; see the module docstring for every rule."""
    folder = Path(folder)
    corpus_path, queries_path = folder / CORPUS_FILE, folder / QUERIES_FILE
    doc_ids, doc_texts = _read_texts(
        corpus_path,
        lambda obj, n: document_text(
            _string(obj, "title", corpus_path, n, optional=True), _string(obj, "text", corpus_path, n)
        ),
    )
    query_ids, query_texts = _read_texts(queries_path, lambda obj, n: _string(obj, "text", queries_path, n))
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrels = _read_qrels(qrels_path, set(query_ids), set(doc_ids))

    judged = set(qrels.loc[qrels["relevance"] > 0, "query_id"])
    if not judged:
        raise MlretError(
            f"{qrels_path}: no judgement has a score above 0.",
            "Nothing can be evaluated; check the split and the file.",
        )
    queries = pd.DataFrame({"query_id": query_ids, "text": query_texts})
    keep = queries["query_id"].isin(judged)
    dropped = int((~keep).sum())
    if dropped:
        log.warning(
            "warning: %s: %d of %d queries have no positive judgement in %s; "
            "dropped (BEIR evaluates judged queries only).",
            queries_path,
            dropped,
            len(queries),
            qrels_path,
        )
    return BeirDataset(
        corpus=pd.DataFrame({"doc_id": doc_ids, "text": doc_texts}),
        queries=queries[keep].reset_index(drop=True),
        qrels=qrels[qrels["query_id"].isin(judged)].reset_index(drop=True),
        dropped_queries=dropped,
    )
