"""Runs, qrels and the @k metrics (MRR@10, Recall@1/5/10/100, nDCG@10), computed by ir-measures.

*@k metrics* come from ir-measures (trec_eval through pytrec_eval; MRR@k
through the MS MARCO scorer) on a TREC-style run and qrels. Recall@k divides
by *all* relevant candidates of the query, so with 11 relevant candidates
Recall@1 is at most 1/11. A query with no relevant candidate in its run scores
0; it is not dropped.

*Ties in runs.* trec_eval breaks score ties by doc id (descending, as
strings), the MS MARCO scorer by doc id ascending; neither matches our pool
order (:mod:`mlret.scoring.ranking`). So every run evaluated here has score
``-rank``, strictly decreasing within a query, and every library sees exactly
our order. The runs written for other tools (:func:`scored_top_k_run`) keep the
similarity instead, with exact ties stepped apart by one float32 each. Build runs for reported numbers from
:func:`mlret.scoring.ranking.exact_top_k`: a FAISS top-k sums float32 in
another order, so near-ties can come out ordered differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias, cast

import ir_measures
import numpy as np
import pandas as pd
from ir_measures import RR, R, nDCG
from ir_measures.util import QrelsConverter, RunConverter
from numpy.typing import NDArray

from mlret.errors import MlretError
from mlret.scoring.checks import relevant_indices

#: The @k measures the study reports, in report order.
AT_K_MEASURES: tuple[ir_measures.Measure, ...] = (RR @ 10, R @ 1, R @ 5, R @ 10, R @ 100, nDCG @ 10)

#: A run or qrels as ir-measures accepts them: a DataFrame or a dict of dicts.
Run: TypeAlias = pd.DataFrame | Mapping[str, Mapping[str, float]]
Qrels: TypeAlias = pd.DataFrame | Mapping[str, Mapping[str, int]]

_TREC_FIX = "Use ids without spaces (the TREC format separates columns by whitespace)."


def check_ids(ids: Sequence[str], what: str) -> list[str]:
    """Ids as strings, refused where the TREC format could not hold them or they repeat."""
    out = [str(i) for i in ids]
    bad = next((i for i in out if not i or any(c.isspace() for c in i)), None)
    if bad is not None:
        raise MlretError(
            f"{what} {bad!r} is empty or contains whitespace, which the TREC format cannot hold", _TREC_FIX
        )
    if len(set(out)) != len(out):
        raise MlretError(f"{what}s are not unique", f"Give each {what.split()[0]} its own id.")
    return out


def qrels_frame(query_ids: Sequence[str], relevant: Sequence[np.ndarray], doc_ids: Sequence[str]) -> pd.DataFrame:
    """Binary qrels (``query_id, doc_id, relevance=1``) from relevant pool indices."""
    qids = check_ids(query_ids, "query id")
    dids = check_ids(doc_ids, "doc id")
    rel = relevant_indices(relevant, len(qids), len(dids))
    rows_q = np.repeat(np.array(qids, dtype=object), [r.size for r in rel])
    rows_d = np.array(dids, dtype=object)[np.concatenate(rel)]
    return pd.DataFrame({"query_id": rows_q, "doc_id": rows_d, "relevance": np.ones(len(rows_q), dtype=np.int64)})


def top_k_run(
    query_ids: Sequence[str],
    indices: np.ndarray,
    doc_ids: Sequence[str],
    scores: np.ndarray | None = None,
) -> pd.DataFrame:
    """A run (``query_id, doc_id, score``) from a top-k, keeping its order exactly.

    ``indices[i]`` lists pool indices best first. ``-1`` entries (FAISS's
    padding when the pool is short) are dropped. The run's score is ``-rank``,
    not the similarity (see the module docstring). If ``scores`` are given,
    they must be non-increasing along each row: an unsorted top-k would
    otherwise be evaluated in the wrong order without any error.
    """
    qids = check_ids(query_ids, "query id")
    dids = np.array(check_ids(doc_ids, "doc id"), dtype=object)
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[0] != len(qids):
        raise MlretError(
            f"indices must have shape ({len(qids)}, k), got {idx.shape}", "Pass one row of pool indices per query."
        )
    if not np.issubdtype(idx.dtype, np.integer):
        raise MlretError(f"indices must be integers, got dtype {idx.dtype}", "Pass pool positions, not scores.")
    if idx.size and (idx.min() < -1 or idx.max() >= len(dids)):
        raise MlretError(
            f"indices fall outside the pool of {len(dids)} candidates",
            "Pass the doc ids of the pool that was searched.",
        )
    if scores is not None:
        _check_descending(qids, idx, np.asarray(scores, dtype=np.float64))
    doc_lists = []
    for i, row in enumerate(idx):
        kept = row[row >= 0]
        if np.any(row[kept.size :] >= 0):
            raise MlretError(
                f"top-k of query {qids[i]!r} has -1 padding before real results",
                "Pass search results as the index returns them (padding last).",
            )
        if np.unique(kept).size != kept.size:
            raise MlretError(
                f"top-k of query {qids[i]!r} lists a candidate twice", "Pass search results as the index returns them."
            )
        doc_lists.append(dids[kept].tolist())
    return _run_frame(qids, doc_lists)


def scored_top_k_run(
    query_ids: Sequence[str], indices: np.ndarray, doc_ids: Sequence[str], scores: np.ndarray
) -> pd.DataFrame:
    """A run from an exact top-k that carries its float32 scores, for the TREC files other tools read.

    Other tools sort a run by score and break ties their own way (trec_eval
    by doc id), not by our pool order, and trec_eval keeps scores as float32.
    So a score equal to the one above it is lowered to the next float32 below
    that one: the order is ours in every reader, and only exactly tied scores
    change, by a few units in the last float32 place. Each score is written
    as the shortest decimal that reads back as that float32.
    """
    sc = np.asarray(scores)
    if sc.dtype != np.float32:
        raise MlretError(
            f"scores must be float32 (as exact_top_k returns them), got dtype {sc.dtype}",
            "Pass the scores of mlret.scoring.ranking.exact_top_k.",
        )
    run = top_k_run(query_ids, indices, doc_ids, sc)
    run["score"] = _untied_scores(sc).astype(str).astype(np.float64)[np.asarray(indices) >= 0]
    return run


def _untied_scores(scores: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows of non-increasing float32 scores made strictly decreasing, each tie stepped down one float32 at a time."""
    out = scores.copy()
    for i in np.flatnonzero(
        np.any(scores[:, 1:] == scores[:, :-1], axis=1)
    ):  # exact ties are rare: fix those rows one by one
        for j in range(1, out.shape[1]):
            out[i, j] = min(out[i, j], np.nextafter(out[i, j - 1], np.float32(-np.inf)))
    return out


def _check_descending(qids: list[str], idx: np.ndarray, scores: np.ndarray) -> None:
    if scores.shape != idx.shape:
        raise MlretError(
            f"scores have shape {scores.shape} but indices {idx.shape}", "Pass the scores returned with these indices."
        )
    with np.errstate(invalid="ignore"):  # -inf - -inf between padding entries
        rising = np.any(np.diff(np.where(idx >= 0, scores, -np.inf), axis=1) > 0, axis=1)
    if rising.any():
        row = int(np.flatnonzero(rising)[0])
        raise MlretError(
            f"top-k of query {qids[row]!r} is not sorted by descending score",
            "Pass the search results in ranked order.",
        )


def _run_frame(qids: list[str], doc_lists: list[list[str]]) -> pd.DataFrame:
    """A run whose score is ``-rank``: strictly decreasing, so no library re-breaks ties."""
    lengths = [len(d) for d in doc_lists]
    ranks = np.concatenate([np.arange(1, n + 1) for n in lengths]) if doc_lists else np.empty(0)
    return pd.DataFrame(
        {
            "query_id": np.repeat(np.array(qids, dtype=object), lengths),
            "doc_id": np.array([d for docs in doc_lists for d in docs], dtype=object),
            "score": -ranks.astype(np.float64),
        }
    )


def as_run_frame(run: Run) -> pd.DataFrame:
    """``query_id, doc_id, score`` with string ids and float scores, from either form of a run."""
    df = _as_frame(RunConverter, run, "a run", "query_id, doc_id, score")
    return df.astype({"query_id": str, "doc_id": str, "score": np.float64})[["query_id", "doc_id", "score"]]


def as_qrels_frame(qrels: Qrels) -> pd.DataFrame:
    """``query_id, doc_id, relevance, iteration`` with string ids, from either form of qrels."""
    df = _as_frame(QrelsConverter, qrels, "qrels", "query_id, doc_id, relevance")
    return df.astype({"query_id": str, "doc_id": str, "relevance": np.int64, "iteration": str})


def _as_frame(converter: type, value: Run | Qrels, what: str, columns: str) -> pd.DataFrame:
    """ir-measures' reading of a run or qrels in either form, its refusal as :class:`MlretError`."""
    try:
        return converter(value).as_pd_dataframe()
    except ValueError as err:
        raise MlretError(f"not {what}: {err}", f"Pass a DataFrame with {columns} or a dict of dicts.") from None


@dataclass(frozen=True)
class AtKResult:
    """@k metrics of one run: per query (rows: query ids, in qrels order) and their means."""

    per_query: pd.DataFrame
    mean: dict[str, float]


def evaluate_at_k(run: Run, qrels: Qrels, measures: Sequence[ir_measures.Measure] = AT_K_MEASURES) -> AtKResult:
    """Per-query values and means of the @k ``measures``, as computed by ir-measures.

    The run must cover exactly the qrels queries, and every qrels query needs a
    relevant doc. Otherwise the mean is taken over some other set of queries
    than the one meant, and no error says so: pytrec_eval drops run queries
    that have no qrels. The run must be at least as deep as the largest
    cutoff (100 for Recall@100) unless the pool is smaller than that.
    """
    run_df = as_run_frame(run)
    qrels_df = as_qrels_frame(qrels)
    if run_df.duplicated(["query_id", "doc_id"]).any():
        raise MlretError("the run lists the same doc twice for a query", "List each doc once per query.")
    qrels_queries = pd.unique(qrels_df["query_id"])
    run_queries = set(pd.unique(run_df["query_id"]).tolist())
    missing = set(qrels_queries.tolist()) - run_queries
    extra = run_queries - set(qrels_queries.tolist())
    if missing or extra:
        raise MlretError(
            f"run and qrels cover different queries ({len(missing)} only in qrels, {len(extra)} only in the run,"
            f" e.g. {sorted(missing | extra)[:3]})",
            "Build the run and the qrels from the same evaluated questions.",
        )
    has_relevant = qrels_df.groupby("query_id")["relevance"].max() > 0
    if not has_relevant.all():
        raise MlretError(
            f"{int((~has_relevant).sum())} qrels queries have no relevant doc",
            "Exclude queries without a relevant candidate before evaluation.",
        )
    evaluator = ir_measures.evaluator(list(measures), _nested(qrels_df, "relevance"))
    result = evaluator.calc(_nested(run_df, "score"))  # iter_calc and calc_aggregate in one pass
    names = [str(m) for m in measures]
    per_query = (
        pd.DataFrame(
            [(m.query_id, str(m.measure), float(m.value)) for m in result.per_query],
            columns=["query_id", "measure", "value"],
        )
        .pivot(index="query_id", columns="measure", values="value")
        .reindex(index=qrels_queries, columns=names)
    )
    per_query.columns.name = None
    # One aggregate per measure: ir-measures returns a mapping when given several measures.
    aggregated = cast(Mapping[ir_measures.Measure, float], result.aggregated)
    mean = {str(m): float(v) for m, v in aggregated.items()}
    return AtKResult(per_query=per_query, mean={n: mean[n] for n in names})


def _nested(df: pd.DataFrame, value: str) -> dict[str, dict[str, object]]:
    """``{query_id: {doc_id: value}}``, the form every ir-measures provider works on.

    Built from plain lists: ir-measures' own converter walks ``itertuples``,
    which takes seconds on a 13k-query run.
    """
    out: dict[str, dict[str, object]] = {}
    for q, d, v in zip(df["query_id"].tolist(), df["doc_id"].tolist(), df[value].tolist()):
        out.setdefault(q, {})[d] = v
    return out
