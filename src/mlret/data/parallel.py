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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from mlret.artifacts import write_json, write_table
from mlret.data.lareqa import LanguageFile, read_language_file
from mlret.errors import MlretError
from mlret.params import SourceParams

CANDIDATE_COLUMNS = ["candidate_id", "lang", "article", "paragraph", "sentence", "text"]
QUESTION_COLUMNS = ["qid", "lang", "text", "article", "paragraph", "answer_candidate", "answer_crosses_sentence"]


@dataclass
class ParallelDataset:
    name: str
    candidates: pd.DataFrame
    questions: pd.DataFrame
    counts: dict[str, dict[str, int]]


class _Components:
    """Union-find over hashable nodes; components numbered in first-seen order."""

    def __init__(self) -> None:
        self.parent: dict[object, object] = {}
        self.order: list[object] = []

    def add(self, node: object) -> None:
        if node not in self.parent:
            self.parent[node] = node
            self.order.append(node)

    def find(self, node: object) -> object:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def numbering(self) -> dict[object, int]:
        ids: dict[object, int] = {}
        out: dict[object, int] = {}
        for node in self.order:
            root = self.find(node)
            out[node] = ids.setdefault(root, len(ids))
        return out


def candidate_id(lang: str, file_article: int, file_paragraph: int, sentence: int) -> str:
    """Stable, human-readable id: language and file position of the sentence."""
    return f"{lang}:{file_article}:{file_paragraph}:{sentence}"


def align(files: list[LanguageFile]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give every paragraph language-independent (article, paragraph) indices."""
    # Languages with the most questions first, so their file order sets the numbering.
    files = sorted(files, key=lambda f: (-len(f.questions), f.lang))
    articles, paragraphs = _Components(), _Components()
    first_node: dict[str, tuple[tuple[str, int], tuple[str, int, int]]] = {}
    for f in files:
        for a, p in f.sentences[["file_article", "file_paragraph"]].drop_duplicates().itertuples(index=False):
            articles.add((f.lang, a))
            paragraphs.add((f.lang, a, p))
        for qid, a, p in f.questions[["qid", "file_article", "file_paragraph"]].itertuples(index=False):
            nodes = ((f.lang, a), (f.lang, a, p))
            if qid in first_node:
                articles.union(first_node[qid][0], nodes[0])
                paragraphs.union(first_node[qid][1], nodes[1])
            else:
                first_node[qid] = nodes
    article_id, paragraph_id = articles.numbering(), paragraphs.numbering()

    candidate_parts, question_parts = [], []
    for f in files:
        s = f.sentences
        cand = pd.DataFrame(
            {
                "candidate_id": [candidate_id(f.lang, a, p, i) for a, p, i in zip(s.file_article, s.file_paragraph, s.sentence)],
                "lang": f.lang,
                "article": [article_id[(f.lang, a)] for a in s.file_article],
                "paragraph": [paragraph_id[(f.lang, a, p)] for a, p in zip(s.file_article, s.file_paragraph)],
                "sentence": s.sentence,
                "text": s.text,
            }
        )
        q = f.questions
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
        candidate_parts.append(cand)
        question_parts.append(ques)
    candidates = pd.concat(candidate_parts, ignore_index=True)[CANDIDATE_COLUMNS]
    questions = pd.concat(question_parts, ignore_index=True)[QUESTION_COLUMNS]
    order = ["lang", "article", "paragraph"]
    candidates = candidates.sort_values([*order, "sentence", "candidate_id"], kind="stable").reset_index(drop=True)
    questions = questions.sort_values([*order, "qid"], kind="stable").reset_index(drop=True)
    return candidates, questions


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


def build_parallel(source: SourceParams, raw_dir: str | Path) -> ParallelDataset:
    raw_dir = Path(raw_dir)
    files = [read_language_file(raw_dir / f"{lang}.json", lang) for lang in tqdm(source.languages, desc=f"read {source.name}", unit="file")]
    _check_published_counts(source, files)
    candidates, questions = align(files)
    counts: dict[str, dict[str, int]] = {}
    for f in files:
        flags: Counter[str] = Counter({"dropped_no_answer": 0, "dropped_answer_outside_sentences": 0, "answer_crosses_sentence": 0, "sentence_text_mismatch": 0})
        flags.update(f.flags)
        counts[f.lang] = {
            "questions": int((questions.lang == f.lang).sum()),
            "candidates": int((candidates.lang == f.lang).sum()),
            **{key: int(value) for key, value in flags.items()},
        }
    return ParallelDataset(source.name, candidates, questions, counts)


def relevant_languages_per_question(questions: pd.DataFrame) -> pd.Series:
    """How many languages answer each qid (11 for XQuAD-R; 2 to 4 for MLQA-R)."""
    return questions.groupby("qid").lang.nunique()


def parallelise_all(sources: dict[str, SourceParams], raw_root: str | Path, out_root: str | Path, metrics_path: str | Path) -> None:
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
            "relevant_per_qid": {"min": int(per_qid.min()), "max": int(per_qid.max())},
        }
    write_json(metrics_path, metrics)
