"""Fixtures of the scoring tests: random settings, the stable-argsort reference, and a run from exact ranks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from mlret.scoring.ranking import similarity_scores
from mlret.scoring.runs import check_ids

#: Doc ids of the unjudged filler documents of ``run_from_ranks``.
FILLER_PREFIX = "mlret-unjudged-"


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def normalise() -> Callable[[np.ndarray], np.ndarray]:
    return _normalise


@pytest.fixture
def random_setting():
    """``random_setting(seed, ...)`` -> unit queries, unit pool, and 1..max_relevant relevant pool indices per query."""

    def make(seed: int, n_queries: int = 40, pool_size: int = 300, dim: int = 24, max_relevant: int = 6):
        rng = np.random.default_rng(seed)
        queries = _normalise(rng.standard_normal((n_queries, dim)))
        pool = _normalise(rng.standard_normal((pool_size, dim)))
        relevant = [
            rng.choice(pool_size, size=rng.integers(1, max_relevant + 1), replace=False) for _ in range(n_queries)
        ]
        return queries, pool, relevant

    return make


@pytest.fixture
def reference_ranks():
    """Stable argsort of the full score matrix: the tie rule stated as a sort. Returns (sorted ranks, order)."""

    def ranks(queries, pool, relevant):
        order = np.argsort(-similarity_scores(queries, pool), axis=1, kind="stable")
        position = np.empty_like(order)
        np.put_along_axis(position, order, np.arange(1, order.shape[1] + 1)[None, :], axis=1)
        return [np.sort(position[i, r]) for i, r in enumerate(relevant)], order

    return ranks


@pytest.fixture
def ids() -> Callable[[str, int], list[str]]:
    return lambda prefix, n: [f"{prefix}{i}" for i in range(n)]


@pytest.fixture
def run_from_ranks():
    """A depth-``depth`` run that puts each query's relevant candidates at their exact ranks.

    The cross-check that @k metrics do not depend on how they are computed:
    every rank up to ``depth`` that holds no relevant candidate gets an
    unjudged filler doc, which trec_eval counts as non-relevant, so ir-measures
    on this run gives exactly what it gives on the run of ``exact_top_k``.
    Scores are ``-rank``, as in every run the package builds.
    """

    def run(
        query_ids: Sequence[str],
        ranks: Sequence[np.ndarray],
        relevant: Sequence[np.ndarray],
        doc_ids: Sequence[str],
        depth: int = 100,
    ) -> pd.DataFrame:
        dids = np.array(check_ids(doc_ids, "doc id"), dtype=object)
        assert not any(d.startswith(FILLER_PREFIX) for d in dids)
        rows = []
        for qid, r, rel_idx in zip(check_ids(query_ids, "query id"), ranks, relevant):
            docs = [f"{FILLER_PREFIX}{n}" for n in range(1, depth + 1)]
            for n, doc in zip(r, dids[np.sort(rel_idx)]):
                if n <= depth:
                    docs[n - 1] = doc
            rows += [(qid, doc, -float(n)) for n, doc in enumerate(docs, start=1)]
        return pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])

    return run
