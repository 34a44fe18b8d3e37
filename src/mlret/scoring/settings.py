"""LAReQA's three retrieval settings over one dataset, and their per-query scores.

* ``mono`` X→X: queries in X, pool = candidates in X, relevant = the answer in X.
* ``cross`` X→Y (X ≠ Y): queries in X whose question exists in Y, pool =
  candidates in Y, relevant = the answer in Y. Pairs sharing no question are
  skipped and counted.
* ``multi`` X→all: queries in X, pool = every candidate of every language,
  relevant = the question's answer in every language where it exists.

Relevance comes from the alignment alone (see :mod:`mlret.data.parallel`).
Each setting also yields a TREC-style run (the exact top-100 with its
scores) and qrels, whose query ids ``{qid}:{query_lang}>{pool_lang}`` are
unique across the pairs of a setting, so one file per setting holds them all.

Every number, per query and per setting, is computed by the other
:mod:`mlret.scoring` modules (exact ranks, measures, ir-measures runs); this
module only decides which queries, which pool, and which candidates are
relevant.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mlret.scoring.measures import (
    average_precision,
    macro_mean,
    mean_average_precision,
    mean_rank_distance,
    rank_distances,
    same_language_shares,
)
from mlret.scoring.ranking import exact_ranks, exact_top_k
from mlret.scoring.runs import evaluate_at_k, qrels_frame, scored_top_k_run, top_k_run
from mlret.vocabulary import Setting

TOP_K = 100
SAME_LANGUAGE_K = 10
AT_K_NAMES = {
    "RR@10": "mrr@10",
    "R@1": "recall@1",
    "R@5": "recall@5",
    "R@10": "recall@10",
    "R@100": "recall@100",
    "nDCG@10": "ndcg@10",
}
PER_QUERY_COLUMNS = [
    "setting",
    "query_lang",
    "pool_lang",
    "qid",
    "n_relevant",
    "ranks",
    "ap",
    "rank_distance",
    "same_language_top10",
    *AT_K_NAMES.values(),
]


@dataclass(frozen=True)
class RetrievalTask:
    """One (query language, pool) pair of a setting: the questions asked, the candidates, the relevant ones."""

    name: Setting
    query_lang: str
    pool_lang: str  # a language code, or "all"
    query_rows: np.ndarray  # rows of the questions table
    pool_rows: np.ndarray  # rows of the candidates table
    relevant: list[np.ndarray]  # per query: positions in pool_rows


def settings(questions: pd.DataFrame, candidates: pd.DataFrame) -> tuple[list[RetrievalTask], list[tuple[str, str]]]:
    """Every task of the three settings of a dataset (tables restricted to its evaluation articles), and the skipped
    cross pairs."""
    langs = sorted(candidates.lang.unique())
    answer = {(q, lang): c for q, lang, c in zip(questions.qid, questions.lang, questions.answer_candidate)}
    langs_of = questions.groupby("qid").lang.agg(set).to_dict()
    pool_of = {lang: np.flatnonzero(candidates.lang.to_numpy() == lang) for lang in langs}
    everything = np.arange(len(candidates))
    position = {cid: i for i, cid in enumerate(candidates.candidate_id)}
    out: list[RetrievalTask] = []
    skipped: list[tuple[str, str]] = []
    for x in langs:
        rows_x = np.flatnonzero(questions.lang.to_numpy() == x)
        qids_x = questions.qid.to_numpy()[rows_x]
        for y in langs:
            keep = np.array([y in langs_of[q] for q in qids_x], dtype=bool)
            if not keep.any():
                skipped.append((x, y))
                continue
            local = {int(g): i for i, g in enumerate(pool_of[y])}
            relevant = [np.array([local[position[answer[(q, y)]]]]) for q in qids_x[keep]]
            name = Setting.MONO if x == y else Setting.CROSS
            out.append(RetrievalTask(name, x, y, rows_x[keep], pool_of[y], relevant))
        relevant_all = [np.array(sorted(position[answer[(q, lang)]] for lang in langs_of[q])) for q in qids_x]
        out.append(RetrievalTask(Setting.MULTI, x, "all", rows_x, everything, relevant_all))
    return out, skipped


@dataclass(frozen=True)
class SettingRun:
    """The exact top-k of a setting's queries with their scores, and their qrels, keyed by :func:`trec_query_ids`."""

    run: pd.DataFrame  # query_id, doc_id, score
    qrels: pd.DataFrame  # query_id, doc_id, relevance


def trec_query_ids(qids: list[str], task: RetrievalTask) -> list[str]:
    """``{qid}:{query_lang}>{pool_lang}``: a question is asked in every pair, so its qid alone repeats."""
    return [f"{q}:{task.query_lang}>{task.pool_lang}" for q in qids]


def score_task(
    task: RetrievalTask,
    questions: pd.DataFrame,
    candidates: pd.DataFrame,
    question_emb: np.ndarray,
    candidate_emb: np.ndarray,
    chunk_size: int = 1024,
    with_run: bool = True,
) -> tuple[pd.DataFrame, SettingRun | None]:
    """Per-query results of one task (exact full-pool ranks and AP, @k metrics, language bias), and its run.

    The run (TREC lines with exact scores) is built only ``with_run``: the cross setting's run holds
    pairs x queries x 100 lines, costly to build when nobody writes it.
    """
    q = question_emb[task.query_rows]
    pool = candidate_emb[task.pool_rows]
    ranks = exact_ranks(q, pool, task.relevant, chunk_size=chunk_size)
    qids = questions.qid.to_numpy()[task.query_rows].tolist()
    doc_ids = candidates.candidate_id.to_numpy()[task.pool_rows].tolist()
    k = min(TOP_K, len(doc_ids))
    top, top_scores = exact_top_k(q, pool, k, chunk_size=chunk_size)
    at_k = evaluate_at_k(top_k_run(qids, top, doc_ids), qrels_frame(qids, task.relevant, doc_ids))
    frame = pd.DataFrame(
        {
            "setting": task.name.value,
            "query_lang": task.query_lang,
            "pool_lang": task.pool_lang,
            "qid": qids,
            "n_relevant": [len(r) for r in task.relevant],
            "ranks": [r.tolist() for r in ranks],
            "ap": [average_precision(r) for r in ranks],
            "rank_distance": rank_distances(ranks),
        }
    )
    if task.name == Setting.MULTI:
        pool_langs = candidates.lang.to_numpy()[task.pool_rows]
        query_langs = np.full(len(qids), task.query_lang, dtype=object)
        frame["same_language_top10"] = same_language_shares(pool_langs[top], query_langs, min(SAME_LANGUAGE_K, k))
    else:
        frame["same_language_top10"] = np.nan
    for measure, column in AT_K_NAMES.items():
        frame[column] = at_k.per_query[measure].to_numpy()
    if not with_run:
        return frame[PER_QUERY_COLUMNS], None
    trec_ids = trec_query_ids(qids, task)
    run = SettingRun(
        scored_top_k_run(trec_ids, top, doc_ids, top_scores), qrels_frame(trec_ids, task.relevant, doc_ids)
    )
    return frame[PER_QUERY_COLUMNS], run


def score_dataset_runs(
    questions: pd.DataFrame,
    candidates: pd.DataFrame,
    question_emb: np.ndarray,
    candidate_emb: np.ndarray,
    desc: str = "score",
    run_settings: Collection[str] = tuple(Setting),
) -> tuple[pd.DataFrame, list[tuple[str, str]], dict[str, SettingRun]]:
    """Per-query results, skipped cross pairs, and one run (all pairs together) per setting in ``run_settings``."""
    all_settings, skipped = settings(questions, candidates)
    frames: list[pd.DataFrame] = []
    runs: dict[str, list[SettingRun]] = {}
    for task in tqdm(all_settings, desc=desc, unit="setting"):
        frame, run = score_task(
            task, questions, candidates, question_emb, candidate_emb, with_run=task.name in run_settings
        )
        frames.append(frame)
        if run is not None:
            runs.setdefault(task.name.value, []).append(run)
    joined = {
        name: SettingRun(
            pd.concat([r.run for r in parts], ignore_index=True), pd.concat([r.qrels for r in parts], ignore_index=True)
        )
        for name, parts in runs.items()
    }
    return pd.concat(frames, ignore_index=True), skipped, joined


def score_dataset(
    questions: pd.DataFrame,
    candidates: pd.DataFrame,
    question_emb: np.ndarray,
    candidate_emb: np.ndarray,
    desc: str = "score",
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    per_query, skipped, _ = score_dataset_runs(
        questions, candidates, question_emb, candidate_emb, desc, run_settings=()
    )
    return per_query, skipped


def summarise(per_query: pd.DataFrame, skipped: int) -> dict[str, object]:
    """Setting-level numbers, each the macro average (:func:`mlret.scoring.measures.macro_mean`) over
    (query language, pool language) pairs, so a language with more questions does not weigh more."""
    out: dict[str, object] = {}
    for name, group in per_query.groupby("setting", sort=True):
        by = [group.query_lang.to_numpy(), group.pool_lang.to_numpy()]
        ranks = [np.asarray(r) for r in group.ranks]
        summary: dict[str, float | int] = {"map": mean_average_precision(ranks, by)}
        summary |= {column: macro_mean(group[column].to_numpy(), by) for column in AT_K_NAMES.values()}
        summary["pairs"] = int(group.groupby(["query_lang", "pool_lang"]).ngroups)
        summary["queries"] = len(group)
        if name == Setting.MULTI:
            if (group.n_relevant >= 2).any():
                summary["rank_distance"] = mean_rank_distance(ranks, by)
            summary["same_language_top10"] = macro_mean(group.same_language_top10.to_numpy(), by)
        out[str(name)] = summary
    out["skipped_cross_pairs"] = skipped
    return out
