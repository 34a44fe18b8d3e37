"""Align the language files of one dataset into parallel candidate and question tables.

Relevance in LAReQA comes from alignment alone: question ``qid`` in any
language is answered by that ``qid``'s answer sentence in every language. So
the one thing this module must get right is a language-independent notion of
*article* and *paragraph*, which splits (no article in two splits) and the
training constraints (no shared answer sentence in a batch) rely on.

XQuAD-R files are parallel by position, but MLQA-R files are not: each
language holds its own subset of articles in its own order. We therefore link
(language, file position) nodes through shared question ids and number the
connected components. For XQuAD-R this reproduces the file positions exactly;
for MLQA-R it groups the translations of a paragraph, however each file orders them.

One misfiled question must not be able to weld two unrelated articles of a
language into one (they would land in one split, and the paragraphs it links
would become one paragraph): two file articles of one language become one
article only when no single question id holds them together, i.e. they stay
linked without any one of their ids. A question id that alone would join them
is dropped in every language; merges that pass are kept. Both are warned about and counted
in the metrics. On the LAReQA release neither happens.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from mlret.artifacts import write_json, write_table
from mlret.data.lareqa import LanguageFile, read_language_file
from mlret.errors import MlretError
from mlret.params import SourceParams

log = logging.getLogger(__name__)

CANDIDATE_COLUMNS = ["candidate_id", "lang", "article", "paragraph", "sentence", "text"]
QUESTION_COLUMNS = ["qid", "lang", "text", "article", "paragraph", "answer_candidate", "answer_crosses_sentence"]
#: What readers of the two tables rely on beyond the columns (:func:`mlret.artifacts.read_table` checks it).
CANDIDATE_KINDS: dict[str, type] = {
    "candidate_id": str,
    "lang": str,
    "article": int,
    "paragraph": int,
    "sentence": int,
    "text": str,
}
QUESTION_KINDS: dict[str, type] = {
    "qid": str,
    "lang": str,
    "text": str,
    "article": int,
    "paragraph": int,
    "answer_candidate": str,
}


@dataclass
class ParallelDataset:
    name: str
    candidates: pd.DataFrame
    questions: pd.DataFrame
    counts: dict[str, dict[str, int]]
    # article index -> lang -> file articles it unites, where a language has two or more.
    article_merges: dict[int, dict[str, list[int]]]


@dataclass(frozen=True)
class Alignment:
    """Language-independent tables, and what aligning them had to drop or merge."""

    candidates: pd.DataFrame
    questions: pd.DataFrame
    # qid -> (lang, file article) of each language holding it: questions that alone tied articles together.
    conflicting: dict[str, list[tuple[str, int]]]
    # article index -> lang -> file articles it unites (only where a language has two or more).
    merges: dict[int, dict[str, list[int]]]


FLAGS = (
    "dropped_no_answer",
    "dropped_answer_outside_sentences",
    "dropped_answer_not_in_sentence",
    "dropped_article_conflict",
    "answer_crosses_sentence",
    "sentence_text_mismatch",
)


def _components(n_nodes: int, links: Iterable[Sequence[int]]) -> list[int]:
    """Connected components of nodes ``0..n_nodes-1`` joined by each group of ``links``.

    Components are numbered in node order (the first node of component 0 comes
    first), which makes the numbering follow the file order the nodes were listed in.
    """
    rows: list[int] = []
    cols: list[int] = []
    for group in links:
        rows.extend(list(group[:1]) * (len(group) - 1))
        cols.extend(group[1:])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    renumber: dict[int, int] = {}
    return [renumber.setdefault(int(label), len(renumber)) for label in labels]


def _merged_groups(nodes: list[tuple[str, int]], labels: list[int]) -> dict[int, dict[str, list[int]]]:
    """Components holding two or more file articles of one language: component -> lang -> node indices."""
    by_component: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, (lang, _) in enumerate(nodes):
        by_component[labels[index]][lang].append(index)
    return {
        component: {lang: members for lang, members in langs.items()}
        for component, langs in by_component.items()
        if any(len(members) > 1 for members in langs.values())
    }


def _sole_links(nodes: list[tuple[str, int]], links: dict[str, list[int]]) -> set[str]:
    """Question ids without which two file articles of one language would fall apart.

    A single id is weak evidence that two articles are one (a question filed
    under the wrong article in one language is enough to produce it), so such
    ids are dropped rather than allowed to merge the articles.
    """
    labels = _components(len(nodes), links.values())
    merged = _merged_groups(nodes, labels)
    weak: set[str] = set()
    for qid, group in links.items():
        component = labels[group[0]]
        if component not in merged or len(set(group)) < 2:
            continue
        without = _components(len(nodes), (g for q, g in links.items() if q != qid))
        if any(len({without[i] for i in members}) > 1 for members in merged[component].values()):
            weak.add(qid)
    return weak


def candidate_id(lang: str, file_article: int, file_paragraph: int, sentence: int) -> str:
    """Stable, human-readable id: language and file position of the sentence."""
    return f"{lang}:{file_article}:{file_paragraph}:{sentence}"


def _file_tables(
    f: LanguageFile,
    article_id: dict[tuple[str, int], int],
    paragraph_id: dict[tuple[str, int, int], int],
    weak: set[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One language file's candidates and questions, in language-independent (article, paragraph) indices."""
    s = f.sentences
    cand = pd.DataFrame(
        {
            "candidate_id": [
                candidate_id(f.lang, a, p, i) for a, p, i in zip(s.file_article, s.file_paragraph, s.sentence)
            ],
            "lang": f.lang,
            "article": [article_id[(f.lang, a)] for a in s.file_article],
            "paragraph": [paragraph_id[(f.lang, a, p)] for a, p in zip(s.file_article, s.file_paragraph)],
            "sentence": s.sentence,
            "text": s.text,
        }
    )
    q = f.questions[~f.questions.qid.isin(weak)]
    ques = pd.DataFrame(
        {
            "qid": q.qid,
            "lang": f.lang,
            "text": q.text,
            "article": [article_id[(f.lang, a)] for a in q.file_article],
            "paragraph": [paragraph_id[(f.lang, a, p)] for a, p in zip(q.file_article, q.file_paragraph)],
            "answer_candidate": [
                candidate_id(f.lang, a, p, i) for a, p, i in zip(q.file_article, q.file_paragraph, q.answer_sentence)
            ],
            "answer_crosses_sentence": q.answer_crosses_sentence.astype(bool),
        }
    )
    return cand, ques


def align(files: list[LanguageFile]) -> Alignment:
    """Give every paragraph language-independent (article, paragraph) indices.

    File articles (and paragraphs) of different languages are one article (one
    paragraph) when question ids link them. Two file articles of the *same*
    language end up in one article only when they stay linked without any one
    of their question ids; a question id that alone would merge them is dropped
    in every language (see :func:`_sole_links`).
    """
    # Languages with the most questions first, so their file order sets the numbering.
    files = sorted(files, key=lambda f: (-len(f.questions), f.lang))
    article_nodes: dict[tuple[str, int], int] = {}
    paragraph_nodes: dict[tuple[str, int, int], int] = {}
    for f in files:
        for a, p in f.sentences[["file_article", "file_paragraph"]].drop_duplicates().itertuples(index=False):
            article_nodes.setdefault((f.lang, a), len(article_nodes))
            paragraph_nodes.setdefault((f.lang, a, p), len(paragraph_nodes))
    article_links: dict[str, list[int]] = defaultdict(list)
    paragraph_links: dict[str, list[int]] = defaultdict(list)
    for f in files:
        for qid, a, p in f.questions[["qid", "file_article", "file_paragraph"]].itertuples(index=False):
            article_links[qid].append(article_nodes[(f.lang, a)])
            paragraph_links[qid].append(paragraph_nodes[(f.lang, a, p)])

    article_list = list(article_nodes)
    weak = _sole_links(article_list, article_links)
    conflicting = {qid: [article_list[i] for i in article_links[qid]] for qid in sorted(weak)}
    article_labels = _components(len(article_list), (g for q, g in article_links.items() if q not in weak))
    paragraph_labels = _components(len(paragraph_nodes), (g for q, g in paragraph_links.items() if q not in weak))
    article_id = {node: article_labels[i] for node, i in article_nodes.items()}
    paragraph_id = {node: paragraph_labels[i] for node, i in paragraph_nodes.items()}
    merges = {
        component: {
            lang: sorted(article_list[i][1] for i in members)
            for lang, members in sorted(langs.items())
            if len(members) > 1
        }
        for component, langs in sorted(_merged_groups(article_list, article_labels).items())
    }

    parts = [_file_tables(f, article_id, paragraph_id, weak) for f in files]
    candidate_parts, question_parts = [c for c, _ in parts], [q for _, q in parts]
    candidates = pd.concat(candidate_parts, ignore_index=True)[CANDIDATE_COLUMNS]
    questions = pd.concat(question_parts, ignore_index=True)[QUESTION_COLUMNS]
    order = ["lang", "article", "paragraph"]
    candidates = candidates.sort_values([*order, "sentence", "candidate_id"], kind="stable").reset_index(drop=True)
    questions = questions.sort_values([*order, "qid"], kind="stable").reset_index(drop=True)
    return Alignment(candidates, questions, conflicting, merges)


def _check_published_counts(source: SourceParams, files: list[LanguageFile]) -> None:
    wrong = {
        f.lang: (f.raw_question_count, source.expected_questions[f.lang])
        for f in files
        if f.raw_question_count != source.expected_questions[f.lang]
    }
    if wrong:
        detail = ", ".join(f"{lang}: {got} (expected {want})" for lang, (got, want) in sorted(wrong.items()))
        raise MlretError(
            f"{source.name}: question counts differ from the published LAReQA release: {detail}.",
            f"The raw files are not the release; re-run `dvc repro download`, "
            f"or correct data.sources.{source.name}.expected_questions for a deliberately different dataset.",
        )


def _where(places: dict[str, list[int]]) -> str:
    return "; ".join(
        f"{lang} file article{'s' if len(a) > 1 else ''} {', '.join(map(str, a))}" for lang, a in places.items()
    )


def _report(name: str, alignment: Alignment) -> None:
    """Warn about every question dropped for article conflicts and every merge kept, with file positions."""
    for qid, nodes in alignment.conflicting.items():
        places: dict[str, list[int]] = defaultdict(list)
        for lang, a in nodes:
            places[lang].append(a)
        log.warning(
            "warning: %s, question %s: the only question id linking its articles across languages (%s), "
            "which would merge articles of one language; dropped in every language.",
            name,
            qid,
            _where(places),
        )
    for article, places in alignment.merges.items():
        log.warning(
            "warning: %s: article %d merges several articles of one language (%s), linked by two or more question ids.",
            name,
            article,
            _where(places),
        )


def build_parallel(source: SourceParams, raw_dir: str | Path) -> ParallelDataset:
    raw_dir = Path(raw_dir)
    files = [
        read_language_file(raw_dir / f"{lang}.json", lang)
        for lang in tqdm(source.languages, desc=f"read {source.name}", unit="file")
    ]
    _check_published_counts(source, files)
    alignment = align(files)
    _report(source.name, alignment)
    candidates, questions = alignment.candidates, alignment.questions
    conflicts = Counter(lang for nodes in alignment.conflicting.values() for lang, _ in nodes)
    counts: dict[str, dict[str, int]] = {}
    for f in files:
        flags: Counter[str] = Counter(dict.fromkeys(FLAGS, 0))
        flags.update(f.flags)
        flags["dropped_article_conflict"] = conflicts[f.lang]
        counts[f.lang] = {
            "questions": int((questions.lang == f.lang).sum()),
            "candidates": int((candidates.lang == f.lang).sum()),
            **{key: int(value) for key, value in flags.items()},
        }
    return ParallelDataset(source.name, candidates, questions, counts, alignment.merges)


def relevant_languages_per_question(questions: pd.DataFrame) -> pd.Series:
    """How many languages answer each qid (11 for XQuAD-R; 2 to 4 for MLQA-R)."""
    return questions.groupby("qid").lang.nunique()


def parallelise_all(
    sources: dict[str, SourceParams], raw_root: str | Path, out_root: str | Path, metrics_path: str | Path
) -> None:
    metrics: dict[str, object] = {}
    for name, source in sorted(sources.items()):
        dataset = build_parallel(source, Path(raw_root) / name)
        write_table(Path(out_root) / name / "candidates.parquet", dataset.candidates)
        write_table(Path(out_root) / name / "questions.parquet", dataset.questions)
        per_qid = relevant_languages_per_question(dataset.questions)
        metrics[name] = {
            "languages": dataset.counts,
            "qids": int(per_qid.size),
            "articles": int(dataset.candidates.article.nunique()),
            "article_merges": len(dataset.article_merges),
            "relevant_per_qid": {"min": int(per_qid.min()), "max": int(per_qid.max())},
        }
    write_json(metrics_path, metrics)
