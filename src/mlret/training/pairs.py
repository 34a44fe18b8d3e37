"""The training pairs one profile offers, and how many batches each language pair gets.

:class:`PairPool` indexes a profile's training table by (query language,
passage language) and links questions whose answers coincide (answer groups);
:func:`apportion` turns the n**alpha shares of the language pairs into whole
batch counts for the ``quota`` schedule. :mod:`mlret.training.samplers` builds
batches from both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mlret.errors import MlretError

LangPair = tuple[str, str]


@dataclass(frozen=True)
class Pair:
    qid: str
    query_lang: str
    passage_lang: str


class PairPool:
    """What the samplers need from one profile's training table (``data/splits/{profile}/train.parquet``)."""

    def __init__(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            raise MlretError("the training table is empty.", "Check the profile's fractions in params.yaml (profiles).")
        self.rows = rows.set_index(["qid", "lang"], drop=False).sort_index()
        self.hard_negative_ids: dict[tuple[str, str], list[str]] = dict(
            zip(self.rows.index, self.rows.hard_negative_ids)
        )
        self.answers_of: dict[str, set[str]] = rows.groupby("qid").positive_id.agg(set).to_dict()
        langs_of: dict[str, list[str]] = rows.groupby("qid").lang.agg(sorted).to_dict()
        self.languages = sorted(rows.lang.unique())
        self.group_of = _answer_groups(rows)
        buckets: dict[LangPair, list[str]] = {}
        for qid in sorted(langs_of):
            for x in langs_of[qid]:
                for y in langs_of[qid]:
                    buckets.setdefault((x, y), []).append(qid)
        self.buckets = buckets

    def available(self, pair: LangPair) -> int:
        return len(self.buckets.get(pair, ()))


def _answer_groups(rows: pd.DataFrame) -> dict[str, int]:
    """Connected components of qids that share a positive candidate in any language.

    The graph is bipartite (question -- positive candidate), so two questions
    are linked through every candidate they share.
    """
    qids, question = np.unique(rows.qid.to_numpy(), return_inverse=True)
    _, candidate = np.unique(rows.positive_id.to_numpy(), return_inverse=True)
    n = len(qids)
    edges = coo_matrix((np.ones(len(rows)), (question, n + candidate)), shape=(n + candidate.max() + 1,) * 2)
    _, labels = connected_components(edges, directed=False)
    return dict(zip(qids.tolist(), labels[:n].tolist()))


def apportion(weights: Sequence[Fraction], total: int, cover: bool = False) -> list[int]:
    """Split ``total`` whole units in proportion to ``weights`` by the largest remainder (Hamilton) method.

    Each weight gets the whole part of its exact share; the units left over go
    to the largest fractional parts, a tie to the weight listed first. So every
    count is its exact share rounded down or up, and the counts add up to
    ``total``. With ``cover`` and ``total >= len(weights)``, every weight first
    gets one unit and the rest is apportioned the same way: a small language
    pair is then seen at least once, at the price of a slightly flatter split.
    Exact fractions, so that equal shares tie exactly instead of by rounding.
    """
    if total < 0 or not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"cannot apportion {total} over weights {list(weights)}")
    base = 1 if cover and total >= len(weights) else 0
    rest = total - base * len(weights)
    exact = [Fraction(w) * rest / sum(weights) for w in weights]
    counts = [int(share) for share in exact]  # the whole parts (shares are non-negative)
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: rest - sum(counts)]:
        counts[i] += 1
    return [base + n for n in counts]


class PairWeights:
    """Language pairs with data, weighted ∝ n**alpha: drawn one at a time, or apportioned over a run."""

    def __init__(self, pool: PairPool, pairs: list[LangPair], alpha: float) -> None:
        self.pairs = [p for p in pairs if pool.available(p) > 0]
        self.weights = np.array([pool.available(p) for p in self.pairs], dtype=np.float64) ** alpha
        self.probs = self.weights / self.weights.sum() if len(self.pairs) else self.weights

    def draw(self, rng: np.random.Generator) -> LangPair:
        return self.pairs[int(rng.choice(len(self.pairs), p=self.probs))]

    def quota(self, total: int) -> list[int]:
        """How many of ``total`` units each pair gets (every pair at least one when ``total`` allows)."""
        return apportion([Fraction(float(w)) for w in self.weights], total, cover=True)
