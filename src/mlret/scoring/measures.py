"""Per-query measures from exact ranks (AP, rank distance, same-language share) and the setting average.

*AP / mAP.* For a query whose ``R`` relevant candidates sit at sorted ranks
``rank_1 < ... < rank_R`` in the full pool, AP = ``(1/R) * sum_k k / rank_k``:
trec_eval's ``map`` on a full-pool run, and scikit-learn's
``average_precision_score`` when there are no ties. A query with no relevant
candidate has no AP; passing one is an error. A random ranking scores
:func:`expected_random_average_precision` on average (about ``R/N``).

*Rank distance (LAReQA language bias).* For a query with ``R >= 2`` relevant
candidates (one per language): highest rank - lowest rank among them, i.e. how
far apart the same answer in different languages lands. Queries with one
relevant candidate have none and are left out of its mean (they still count
for mAP). **A perfect retriever does not score 0** but ``R - 1`` (10 on
XQuAD-R), the smallest value any ranking can reach; we report LAReQA's
unshifted quantity, as the paper defines it. Only a full pool (a zero-shot
dataset) gives values comparable with the paper's; the training source is
scored on its test articles alone (see ``EvalCorpora.pool_label``).

*Same-language share@k.* The fraction of a query's top-k results written in
the query's language.

*Setting averages* (:func:`macro_mean`). Every setting-level number is macro:
per-query values are averaged within each (query language, pool language)
pair, then over pairs, so a language with more questions does not weigh more.
:func:`macro_weights` states the same rule as one weight per query, for the
report's weighted means, bootstrap draws and tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mlret.errors import MlretError
from mlret.scoring.checks import is_count, sorted_ranks


def average_precision(ranks: np.ndarray) -> float:
    """Exact AP over the full pool: ``mean_k k / rank_k`` over the sorted 1-based relevant ranks.

    Precision is taken at each relevant candidate's rank and averaged over
    *all* relevant candidates. None is left out, because the ranks cover the
    whole pool.
    """
    r = sorted_ranks(ranks, "average precision")
    return float(np.mean(np.arange(1, r.size + 1, dtype=np.float64) / r))


def mean_average_precision(ranks_per_query: Sequence[np.ndarray], by: Sequence[np.ndarray] | None = None) -> float:
    """mAP: :func:`average_precision` averaged over queries, macro over the groups ``by`` (see :func:`macro_mean`)."""
    if len(ranks_per_query) == 0:
        raise MlretError("mean average precision of zero queries is undefined", "Score at least one query.")
    return macro_mean([average_precision(r) for r in ranks_per_query], by)


def macro_mean(values: Sequence[float] | np.ndarray, by: Sequence[np.ndarray] | None = None) -> float:
    """The setting average: the mean over queries within each group, then the unweighted mean over groups.

    ``by`` holds one label array per grouping key (the pipeline passes query
    language and pool language), each with one label per query; ``None`` puts
    every query in one group. Groups are visited in sorted label order and
    summed as pandas does, so the number is the same bit for bit wherever it is
    computed. A non-finite value means a per-query metric was undefined and not
    filtered out upstream, so it is refused.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise MlretError(
            f"a setting average needs a non-empty 1-D array of per-query values, got shape {v.shape}",
            "Score at least one query.",
        )
    if not np.isfinite(v).all():
        raise MlretError(
            f"{int((~np.isfinite(v)).sum())} per-query values are NaN or infinite",
            "Leave out queries for which the metric is undefined.",
        )
    keys = [np.zeros(v.size, dtype=np.int8)] if by is None else [np.asarray(b) for b in by]
    if not keys or any(k.shape != v.shape for k in keys):
        raise MlretError(
            f"group labels must have one entry per query ({v.size}), got shapes {[k.shape for k in keys]}",
            "Pass one label per query for each grouping key.",
        )
    return float(pd.Series(v).groupby(keys, sort=True).mean().mean())


def macro_weights(by: Sequence[np.ndarray], within: Sequence[np.ndarray] = (), parts: int = 1) -> NDArray[np.float64]:
    """Each query's weight in its :func:`macro_mean`: 1 / (groups x queries in its group).

    ``by`` labels each query's group (query language and pool language); ``within`` labels the
    separate averages a table holds side by side (model, dataset, setting), each with its own
    groups, so that the weights of one average sum to 1 and ``sum(weight * value)`` over its
    queries is its macro mean. ``parts``: the number of such averages that are in turn averaged
    alike (the settings of the report's scope ``all``), which divides every weight.
    """
    if not by:
        raise MlretError("macro weights need at least one grouping key", "Pass the query and pool language labels.")
    n = len(by[0])
    outer = _combined([np.zeros(n, dtype=np.int64), *within])
    group = _combined([outer, *by])
    in_group = np.bincount(group)
    outer_of_group = np.zeros(in_group.size, dtype=np.int64)
    outer_of_group[group] = outer
    groups = np.bincount(outer_of_group)
    return 1.0 / (parts * in_group[group] * groups[outer])


def _combined(keys: Sequence[np.ndarray]) -> NDArray[np.int64]:
    """One integer per distinct combination of ``keys`` (0, 1, … in order of appearance), for each query."""
    ids = np.zeros(len(keys[0]), dtype=np.int64)
    for key in keys:
        if len(key) != ids.size:
            raise MlretError(
                f"group labels must have one entry per query ({ids.size}), got {len(key)}",
                "Pass one label per query for each grouping key.",
            )
        codes, uniques = pd.factorize(np.asarray(key), use_na_sentinel=False)
        ids = pd.factorize(ids * len(uniques) + codes)[0].astype(np.int64)
    return ids


def expected_random_average_precision(n_relevant: int, pool_size: int) -> float:
    """Chance-level AP: the exact mean AP of a uniformly random ranking.

    The chance reference next to a model's mAP. With ``x_j`` indicating a
    relevant candidate at rank ``j``, ``E[x_j] = R/N`` and ``E[x_i x_j] =
    R(R-1)/(N(N-1))`` for ``i != j``. Summing ``E[x_j * (sum_{i<=j} x_i) / j] / R``
    over ``j`` gives ``(H_N + (R-1)/(N-1) * (N - H_N)) / N``, with ``H_N`` the
    N-th harmonic number: ``H_N/N`` for ``R = 1`` and ``1`` for ``R = N``.
    """
    if not 1 <= n_relevant <= pool_size:
        raise MlretError(
            f"need 1 <= n_relevant <= pool_size, got {n_relevant} and {pool_size}",
            "Pass a relevant count no larger than the pool.",
        )
    if pool_size == 1:
        return 1.0
    harmonic = math.fsum(1.0 / j for j in range(1, pool_size + 1))
    return (harmonic + (n_relevant - 1) / (pool_size - 1) * (pool_size - harmonic)) / pool_size


def rank_distance(ranks: np.ndarray) -> int:
    """LAReQA rank distance of one query: highest minus lowest rank of its relevant candidates."""
    r = sorted_ranks(ranks, "rank distance")
    if r.size < 2:
        raise MlretError(
            "rank distance needs at least two relevant candidates, got one",
            "Leave single-answer queries out (rank_distances gives them NaN).",
        )
    return int(r[-1] - r[0])


def rank_distances(ranks_per_query: Sequence[np.ndarray]) -> NDArray[np.float64]:
    """Per-query :func:`rank_distance`, NaN where a query has a single relevant candidate (undefined)."""
    return np.array(
        [rank_distance(r) if np.asarray(r).size >= 2 else np.nan for r in ranks_per_query], dtype=np.float64
    )


def mean_rank_distance(ranks_per_query: Sequence[np.ndarray], by: Sequence[np.ndarray] | None = None) -> float:
    """Setting-level rank distance: :func:`rank_distance` over queries with >= 2 relevant candidates, macro over ``by``.

    A group left with no such query is left out of the macro average.
    """
    distances = rank_distances(ranks_per_query)
    defined = ~np.isnan(distances)
    if not defined.any():
        raise MlretError(
            "no query has two or more relevant candidates, so rank distance is undefined",
            "Report rank distance only for multilingual pools.",
        )
    return macro_mean(distances[defined], None if by is None else [np.asarray(b)[defined] for b in by])


def same_language_shares(top_k_langs: np.ndarray, query_langs: np.ndarray, k: int = 10) -> NDArray[np.float64]:
    """Per query, the fraction of its top ``k`` results written in the query's own language.

    On an 11-way parallel pool a language-agnostic retriever has about
    ``1/11`` of its top results in the query's language; values far above
    that mean same-language candidates are preferred.
    """
    langs = np.asarray(top_k_langs)
    qlangs = np.asarray(query_langs)
    if not is_count(k) or k < 1:
        raise MlretError(f"k must be a positive integer, got {k!r}", "Pass k >= 1.")
    if langs.ndim != 2 or langs.shape[0] == 0:
        raise MlretError(
            f"top_k_langs must be a non-empty (n_queries, k) array, got shape {langs.shape}",
            "Pass the languages of each query's top results, one row per query.",
        )
    if qlangs.shape != (langs.shape[0],):
        raise MlretError(
            f"query_langs must have shape ({langs.shape[0]},), got {qlangs.shape}", "Pass one language per query."
        )
    if langs.shape[1] < k:
        raise MlretError(
            f"top_k_langs holds only {langs.shape[1]} results per query, fewer than k={k}",
            f"Retrieve at least {k} per query.",
        )
    return (langs[:, :k] == qlangs[:, None]).mean(axis=1)
