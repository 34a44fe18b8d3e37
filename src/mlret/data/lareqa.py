"""Read one LAReQA language file (SQuAD v1.1 plus ``sentences``/``sentence_breaks``).

This is the only code that knows the JSON layout. It returns flat tables in
*file* coordinates (article and paragraph positions within that one file);
:mod:`mlret.data.parallel` turns them into language-independent ones.

What happens to bad input, case by case (docs/errors.md repeats this table):

* not valid JSON, a missing field, ``sentences`` and ``sentence_breaks`` of
  different lengths, a question id repeated within the file: **stop**. Each
  makes the file's alignment untrustworthy, so no number computed from it
  could be believed.
* a question with no answer, or whose answer starts outside every sentence:
  **dropped**, counted in the metrics and warned about: the question has no
  retrievable answer, but the rest of the file is sound.
* a question whose answer text is missing from the sentence its start falls
  in (by ``sentence_breaks``) but present in another sentence of the
  paragraph: **dropped**, counted and warned about. The breaks do not match
  the sentences there (e.g. two swapped breaks of equal length), so the label
  would name the wrong candidate. An answer found in no sentence at all cannot
  be checked this way and is kept: a known XQuAD-R ``tr`` answer carries an
  encoding artefact that its sentence text does not.
* an answer that runs past the end of its sentence: **kept** (LAReQA's rule:
  the sentence holding the answer start is the answer) and flagged.
* a sentence whose text differs from ``context[start:end]`` (a known upstream
  off-by-one in a few XQuAD-R files): **kept** with the ``sentences`` text,
  which is LAReQA's candidate text, and counted.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlret.errors import MlretError

log = logging.getLogger(__name__)

BOM = "\ufeff"


def clean_text(text: str) -> str:
    """Strip byte-order marks and collapse runs of whitespace, as retrieval candidates need."""
    return " ".join(text.replace(BOM, " ").split())


@dataclass
class LanguageFile:
    """One language of one dataset, in file coordinates."""

    lang: str
    path: Path
    sentences: pd.DataFrame  # file_article, file_paragraph, sentence, text
    questions: pd.DataFrame  # qid, file_article, file_paragraph, text, answer_sentence, answer_crosses_sentence
    raw_question_count: int
    flags: Counter[str] = field(default_factory=Counter)


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj or not isinstance(obj[key], kind):
        raise MlretError(
            f"{where}: field `{key}` is missing or not a {kind.__name__}.",
            "The file does not follow the LAReQA/SQuAD layout; re-download it (`dvc repro download`).",
        )
    return obj[key]


def _answer_sentence(breaks: list[list[int]], start: int) -> int | None:
    for index, (begin, end) in enumerate(breaks):
        if begin <= start < end:
            return index
    return None


def _misplaced_answer(sentences: list[str], breaks: list[list[int]], index: int, start: int, answer: str) -> int | None:
    """The sentence that really holds the answer, when it is not the one the breaks assign.

    Only the part of the answer inside the assigned break is looked for, so an
    answer that runs past its sentence (kept by LAReQA's rule) is not a violation.
    """
    head = answer[: breaks[index][1] - start]
    if not head or head in sentences[index]:
        return None
    return next((j for j, sentence in enumerate(sentences) if j != index and head in sentence), None)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlretError(f"{path}: file not found.", "Run `dvc repro download` first.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        detail = (
            f"line {err.lineno}, column {err.colno}: {err.msg}" if isinstance(err, json.JSONDecodeError) else str(err)
        )
        raise MlretError(
            f"{path}: not valid JSON ({detail}).",
            "The file is truncated or corrupt; delete it and run `dvc repro download`.",
        ) from None


@dataclass
class _Rows:
    """What reading one file gathers, paragraph by paragraph, in file coordinates."""

    flags: Counter[str] = field(default_factory=Counter)
    sentences: list[tuple[int, int, int, str]] = field(default_factory=list)
    questions: list[tuple[str, int, int, str, int, bool]] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # qid -> where it was first read
    raw_questions: int = 0


def _read_paragraph(rows: _Rows, paragraph: Any, a: int, p: int, where: str) -> None:
    context = _field(paragraph, "context", str, where)
    sentences = _field(paragraph, "sentences", list, where)
    breaks = _field(paragraph, "sentence_breaks", list, where)
    if len(sentences) != len(breaks):
        raise MlretError(
            f"{where}: {len(sentences)} sentences but {len(breaks)} sentence_breaks.",
            "The paragraph cannot be split into candidates; re-download the file or fix that paragraph.",
        )
    for s, (sentence, (begin, end)) in enumerate(zip(sentences, breaks)):
        if context[begin:end] != sentence:
            rows.flags["sentence_text_mismatch"] += 1
        rows.sentences.append((a, p, s, clean_text(sentence)))
    for qa in _field(paragraph, "qas", list, where):
        _read_question(rows, qa, a, p, where, sentences, breaks)


def _read_question(
    rows: _Rows, qa: Any, a: int, p: int, where: str, sentences: list[str], breaks: list[list[int]]
) -> None:
    """Keep the question with its answer sentence, or count and warn about why it is dropped."""
    rows.raw_questions += 1
    qid = str(_field(qa, "id", str, where))
    if qid in rows.seen:
        raise MlretError(
            f"{where}: question id {qid} appears twice in this file (first at {rows.seen[qid]}).",
            "Question ids must be unique per language for cross-lingual alignment; remove the duplicate.",
        )
    rows.seen[qid] = f"article {a}, paragraph {p}"
    answers = _field(qa, "answers", list, f"{where}, question {qid}")
    if not answers:
        rows.flags["dropped_no_answer"] += 1
        log.warning("warning: %s, question %s: no answer; dropped.", where, qid)
        return
    start = _field(answers[0], "answer_start", int, f"{where}, question {qid}")
    answer = _field(answers[0], "text", str, f"{where}, question {qid}")
    index = _answer_sentence(breaks, start)
    if index is None:
        rows.flags["dropped_answer_outside_sentences"] += 1
        log.warning("warning: %s, question %s: answer start %d is outside every sentence; dropped.", where, qid, start)
        return
    actual = _misplaced_answer(sentences, breaks, index, start, answer)
    if actual is not None:
        rows.flags["dropped_answer_not_in_sentence"] += 1
        log.warning(
            "warning: %s, question %s: answer %r starts in sentence %d by sentence_breaks but its text is "
            "in sentence %d; the breaks do not match the sentences; dropped.",
            where,
            qid,
            answer,
            index,
            actual,
        )
        return
    crosses = start + len(answer) > breaks[index][1]
    rows.flags["answer_crosses_sentence"] += int(crosses)
    rows.questions.append(
        (qid, a, p, clean_text(_field(qa, "question", str, f"{where}, question {qid}")), index, crosses)
    )


def read_language_file(path: str | Path, lang: str) -> LanguageFile:
    path = Path(path)
    payload = _load(path)
    rows = _Rows()
    for a, article in enumerate(_field(payload, "data", list, str(path))):
        for p, paragraph in enumerate(_field(article, "paragraphs", list, f"{path}: article {a}")):
            _read_paragraph(rows, paragraph, a, p, f"{path}: article {a}, paragraph {p}")
    sentences_frame = pd.DataFrame(rows.sentences, columns=["file_article", "file_paragraph", "sentence", "text"])
    questions_frame = pd.DataFrame(
        rows.questions,
        columns=["qid", "file_article", "file_paragraph", "text", "answer_sentence", "answer_crosses_sentence"],
    )
    return LanguageFile(lang, path, sentences_frame, questions_frame, rows.raw_questions, rows.flags)
