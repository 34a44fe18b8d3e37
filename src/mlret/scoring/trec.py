"""TREC run and qrels files, the form other IR tools (trec_eval, ir-measures, ranx) read."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from mlret.artifacts import atomic_path
from mlret.errors import MlretError
from mlret.scoring.runs import Qrels, Run, as_qrels_frame, as_run_frame, check_ids


def write_trec_run(path: str | Path, run: Run, tag: str) -> None:
    """Write a run as a TREC run file (``qid Q0 docid rank score tag``); ``.gz`` paths are gzipped.

    The rank column follows descending score, with ties kept in input order.
    Scores are written at full precision (shortest round-trip repr), so
    ``ir_measures.read_trec_run`` reads back exactly the run that was
    evaluated.
    """
    check_run_tag(tag)
    df = as_run_frame(run)
    check_ids(pd.unique(df["query_id"]), "query id")
    check_ids(pd.unique(df["doc_id"]), "doc id")
    order = {q: i for i, q in enumerate(pd.unique(df["query_id"]))}
    df = df.assign(
        Q0="Q0",
        rank=df.groupby("query_id", sort=False)["score"].rank(method="first", ascending=False).astype(np.int64),
        tag=tag,
        _q=df["query_id"].map(order),
    ).sort_values(["_q", "rank"], kind="stable")
    _write_columns(path, df[["query_id", "Q0", "doc_id", "rank", "score", "tag"]])


def check_run_tag(tag: str) -> None:
    """Refuse a tag the TREC format cannot hold, before any work is spent on the run."""
    if not tag or any(c.isspace() for c in tag):
        raise MlretError(
            f"run tag {tag!r} is empty or contains whitespace, which the TREC format cannot hold",
            "Use a one-word tag, e.g. the model name.",
        )


def write_trec_qrels(path: str | Path, qrels: Qrels) -> None:
    """Write qrels as a TREC qrels file (``qid iteration docid relevance``); ``.gz`` paths are gzipped."""
    df = as_qrels_frame(qrels)
    check_ids(pd.unique(df["query_id"]), "query id")
    check_ids(pd.unique(df["doc_id"]), "doc id")
    _write_columns(path, df[["query_id", "iteration", "doc_id", "relevance"]])


def _write_columns(path: str | Path, df: pd.DataFrame) -> None:
    """Space-separated, no header, atomically.

    A ``.gz`` file gets no name and no time in its gzip header, so the same
    run gives the same bytes (and the same DVC hash) whenever it is written.
    """
    with atomic_path(path) as tmp:
        if Path(path).suffix != ".gz":
            df.to_csv(tmp, sep=" ", header=False, index=False, lineterminator="\n")
            return
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0) as packed,
            io.TextIOWrapper(packed, encoding="utf-8", newline="") as text,
        ):
            df.to_csv(text, sep=" ", header=False, index=False, lineterminator="\n")
