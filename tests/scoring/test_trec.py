"""TREC run and qrels files: exact format, tie order, and a round trip through ir-measures."""

from __future__ import annotations

import gzip
from pathlib import Path

import ir_measures
import pandas as pd
import pytest

from mlret.errors import MlretError
from mlret.scoring.ranking import exact_top_k
from mlret.scoring.runs import evaluate_at_k, qrels_frame, top_k_run
from mlret.scoring.trec import write_trec_qrels, write_trec_run


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_trec_files_round_trip_through_ir_measures(tmp_path: Path, suffix: str, random_setting, ids):
    queries, pool, relevant = random_setting(11, n_queries=8, pool_size=50)
    qids, dids = ids("q", 8), ids("en:0:", 50)
    indices, scores = exact_top_k(queries, pool, 20)
    run = top_k_run(qids, indices, dids, scores)
    qrels = qrels_frame(qids, relevant, dids)
    write_trec_run(tmp_path / f"run.trec{suffix}", run, tag="mlret")
    write_trec_qrels(tmp_path / f"qrels.trec{suffix}", qrels)
    run_back = pd.DataFrame(ir_measures.read_trec_run(str(tmp_path / f"run.trec{suffix}")))
    qrels_back = pd.DataFrame(ir_measures.read_trec_qrels(str(tmp_path / f"qrels.trec{suffix}")))
    pd.testing.assert_frame_equal(run_back, run.astype({"query_id": str, "doc_id": str}), check_dtype=False)
    assert evaluate_at_k(run_back, qrels_back).per_query.equals(evaluate_at_k(run, qrels).per_query)
    if suffix == ".gz":
        with gzip.open(tmp_path / "run.trec.gz", "rt") as handle:
            first = handle.readline()
    else:
        first = (tmp_path / "run.trec").read_text().splitlines()[0] + "\n"
    assert first == f"q0 Q0 en:0:{indices[0, 0]} 1 -1.0 mlret\n"


def test_trec_writers_format_and_tie_order(tmp_path: Path):
    run = pd.DataFrame({"query_id": ["b", "b", "a"], "doc_id": ["x", "y", "z"], "score": [0.25, 0.5, 0.25]})
    write_trec_run(tmp_path / "run", run, tag="t")
    assert (tmp_path / "run").read_text() == "b Q0 y 1 0.5 t\nb Q0 x 2 0.25 t\na Q0 z 1 0.25 t\n"
    write_trec_qrels(tmp_path / "qrels", {"q": {"d": 1}})
    assert (tmp_path / "qrels").read_text() == "q 0 d 1\n"
    with pytest.raises(MlretError):
        write_trec_run(tmp_path / "bad", run, tag="two words")
    with pytest.raises(MlretError):
        write_trec_qrels(tmp_path / "bad", {"q 1": {"d": 1}})


def test_gzipped_files_are_the_same_bytes_whatever_their_name(tmp_path: Path):
    run = pd.DataFrame({"query_id": ["q", "q"], "doc_id": ["x", "y"], "score": [0.5, 0.25]})
    write_trec_run(tmp_path / "a.run.gz", run, tag="t")
    (tmp_path / "later").mkdir()
    write_trec_run(tmp_path / "later" / "b.run.gz", run, tag="t")
    assert (tmp_path / "a.run.gz").read_bytes() == (tmp_path / "later" / "b.run.gz").read_bytes()
    with gzip.open(tmp_path / "a.run.gz", "rt") as handle:
        assert handle.read() == "q Q0 x 1 0.5 t\nq Q0 y 2 0.25 t\n"
