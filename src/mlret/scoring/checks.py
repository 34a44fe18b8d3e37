"""Input checks shared by the scoring modules: each refuses what would silently give a wrong number."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mlret.errors import MlretError

#: How far a row norm may be from 1 before embeddings count as not normalised.
#: float32 normalisation leaves errors near 1e-7, so this only flags real mistakes.
NORM_TOLERANCE = 1e-3


def is_count(value: object) -> bool:
    """An integer that is not a bool (``True`` would pass as 1 otherwise)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def as_embeddings(x: np.ndarray, name: str) -> NDArray[np.float32]:
    """Check one embedding matrix and return it as C-contiguous float32.

    Non-finite values or rows that are not unit length would silently turn
    cosine retrieval into something else, so both are refused.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise MlretError(
            f"{name} embeddings must be a non-empty 2-D array, got shape {x.shape}",
            "Pass one row per text, at least one text.",
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise MlretError(
            f"{name} embeddings must be floating point, got dtype {x.dtype}", "Pass the encoder's float32 output."
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise MlretError(
            f"{name} embeddings contain NaN or infinite values",
            "Check the encoder output (an empty text or a diverged checkpoint).",
        )
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    worst = int(np.argmax(np.abs(norms - 1.0)))
    if abs(norms[worst] - 1.0) > NORM_TOLERANCE:
        raise MlretError(
            f"{name} embeddings are not L2-normalised (row {worst} has norm {norms[worst]:.6g})",
            "Normalise the embeddings (x / ||x||) before scoring; scores are cosine similarities.",
        )
    return x


def check_same_dim(queries: np.ndarray, pool: np.ndarray) -> None:
    if queries.shape[1] != pool.shape[1]:
        raise MlretError(
            f"query embeddings have dimension {queries.shape[1]} but pool embeddings {pool.shape[1]}",
            "Encode both with the same model.",
        )


def check_chunk_size(chunk_size: int) -> None:
    if not is_count(chunk_size) or chunk_size < 1:
        raise MlretError(
            f"chunk_size must be a positive integer, got {chunk_size!r}", "Pass a block size of at least 1 query."
        )


def relevant_indices(relevant: Sequence[np.ndarray], n_queries: int, pool_size: int) -> list[NDArray[np.int64]]:
    """Validate the per-query relevant pool indices: 1-D, integer, non-empty, unique, in range."""
    if len(relevant) != n_queries:
        raise MlretError(
            f"got relevant sets for {len(relevant)} queries but {n_queries} query embeddings",
            "Pass one relevant set per query, in query order.",
        )
    out = []
    for i, rel in enumerate(relevant):
        arr = _integer_vector(
            rel,
            empty=MlretError(
                f"query {i} has no relevant pool index (or not a 1-D array)",
                "Drop questions without a retrievable answer before evaluation.",
            ),
            not_integer=f"relevant indices of query {i} must be integers",
            integer_fix="Pass positions in the pool, not ids or scores.",
        )
        if arr.min() < 0 or arr.max() >= pool_size:
            raise MlretError(
                f"relevant indices of query {i} fall outside the pool of {pool_size} candidates",
                "Pass positions in the pool this query is scored against.",
            )
        if np.unique(arr).size != arr.size:
            raise MlretError(
                f"relevant indices of query {i} repeat a candidate: {arr.tolist()}",
                "List each relevant candidate once.",
            )
        out.append(arr)
    return out


def sorted_ranks(ranks: np.ndarray, what: str) -> NDArray[np.int64]:
    """One query's 1-based ranks of its relevant candidates, checked to be strictly increasing."""
    arr = _integer_vector(
        ranks,
        empty=MlretError(
            f"{what} needs the ranks of at least one relevant candidate, got shape {np.shape(ranks)}",
            "Exclude queries without a relevant candidate before evaluation.",
        ),
        not_integer="ranks must be integers",
        integer_fix="Pass the ranks exact_ranks returns.",
    )
    if arr[0] < 1 or np.any(np.diff(arr) <= 0):
        raise MlretError(
            f"ranks must be 1-based and strictly increasing, got {arr.tolist()[:20]}",
            "Pass the ranks exact_ranks returns (sorted, from 1).",
        )
    return arr


def _integer_vector(values: np.ndarray, *, empty: MlretError, not_integer: str, integer_fix: str) -> NDArray[np.int64]:
    """``values`` as a non-empty 1-D int64 array; ``empty`` is raised for any other shape, and an error naming the
    dtype for a non-integer one."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise empty
    if not np.issubdtype(arr.dtype, np.integer):
        raise MlretError(f"{not_integer}, got dtype {arr.dtype}", integer_fix)
    return arr.astype(np.int64)
