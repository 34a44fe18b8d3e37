"""The evaluate stage's TREC run and qrels files, scored by ir-measures, give the evaluate stage's own numbers."""

from __future__ import annotations

from pathlib import Path

import ir_measures
import numpy as np
import pandas as pd
import pytest
from ir_measures import AP, RR, R, nDCG

from mlret.artifacts import write_json, write_table
from mlret.data.corpora import EvalCorpora, save_embeddings
from mlret.data.parallel import build_parallel
from mlret.errors import MlretError
from mlret.scoring.evaluate import evaluate_model
from mlret.scoring.ranking import exact_top_k, similarity_scores
from mlret.scoring.runs import scored_top_k_run

#: File measure -> per_query.parquet column.
COLUMNS = {RR @ 10: "mrr@10", R @ 10: "recall@10", R @ 100: "recall@100", nDCG @ 10: "ndcg@10"}


@pytest.fixture
def evaluated(tmp_path: Path, write_dataset) -> tuple[Path, pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """One 3-language dataset (36 candidates per language, so the multilingual pool of 108 is deeper than the run),
    evaluated by ``evaluate_model`` on random embeddings where every paragraph's sentence 2 is a copy of its
    sentence 0: exact ties between an answer and a non-answer, which trec_eval would order by doc id, not pool order."""
    data = build_parallel(write_dataset(tmp_path / "raw", "ds", ["en", "ru", "zh"]), tmp_path / "raw" / "ds")
    write_table(tmp_path / "parallel" / "ds" / "questions.parquet", data.questions)
    write_table(tmp_path / "parallel" / "ds" / "candidates.parquet", data.candidates)
    write_json(tmp_path / "articles.json", {"train": [], "dev": [], "test": []})
    questions, candidates = data.questions, data.candidates
    rng = np.random.default_rng(3)
    q = rng.standard_normal((len(questions), 4)).astype(np.float32)
    p = rng.standard_normal((len(candidates), 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    first = candidates.set_index(["lang", "article", "paragraph", "sentence"]).index
    for j, (lang, article, paragraph, sentence) in enumerate(first):
        if sentence == 2:
            p[j] = p[first.get_loc((lang, article, paragraph, 0))]
    save_embeddings(tmp_path / "emb" / "ds", questions, candidates, q, p)
    evaluate_model(
        EvalCorpora(tmp_path / "parallel", tmp_path / "articles.json", "other", ["ds"]),
        tmp_path / "emb",
        tmp_path / "eval",
        tmp_path / "metrics.json",
        "strategy/profile/0",
        ["mono", "cross", "multi"],
    )
    return tmp_path / "eval" / "ds", questions, candidates, q, p


def file_values(folder: Path, setting: str) -> tuple[pd.DataFrame, list, list]:
    """Per-query values that ir-measures computes from the files alone, with the files' run and qrels."""
    qrels = list(ir_measures.read_trec_qrels(str(folder / "runs" / f"{setting}.qrels")))
    run = list(ir_measures.read_trec_run(str(folder / "runs" / f"{setting}.run.gz")))
    rows = [(m.query_id, str(m.measure), m.value) for m in ir_measures.iter_calc([*COLUMNS, AP], qrels, run)]
    return (
        pd.DataFrame(rows, columns=["query_id", "measure", "value"]).pivot(
            index="query_id", columns="measure", values="value"
        ),
        run,
        qrels,
    )


@pytest.mark.parametrize("setting", ["mono", "cross", "multi"])
def test_run_files_scored_by_ir_measures_give_the_per_query_results(evaluated, setting: str):
    folder, *_ = evaluated
    per_query = pd.read_parquet(folder / "per_query.parquet").query("setting == @setting")
    per_query.index = per_query.qid + ":" + per_query.query_lang + ">" + per_query.pool_lang
    values, run, qrels = file_values(folder, setting)
    # Every evaluated query, once, in both files: a language missing from the qrels is missing here.
    assert (
        sorted(values.index)
        == sorted(per_query.index)
        == sorted({r.query_id for r in run})
        == sorted({r.query_id for r in qrels})
    )
    assert len(qrels) == per_query.n_relevant.sum()
    values = values.loc[per_query.index]
    for measure, column in COLUMNS.items():
        assert values[str(measure)].to_numpy() == pytest.approx(per_query[column].to_numpy(), abs=1e-12), column
    # AP from a top-100 equals the full-pool AP exactly when every relevant candidate made the top 100.
    depth = pd.Series([r.query_id for r in run]).value_counts().loc[per_query.index].to_numpy()
    complete = np.array([max(r) <= d for r, d in zip(per_query.ranks, depth)])
    assert values["AP"].to_numpy()[complete] == pytest.approx(per_query.ap.to_numpy()[complete], abs=1e-12)
    assert (values["AP"].to_numpy()[~complete] < per_query.ap.to_numpy()[~complete]).all()
    assert complete.all() == (setting != "multi") and complete.any()
    # Depth: the top 100, or the whole pool where it is smaller.
    pool = 36 if setting != "multi" else 108
    assert set(depth) == {min(100, pool)}


def test_run_files_hold_the_exact_scores_in_our_order(evaluated):
    folder, questions, candidates, q, p = evaluated
    lines = pd.read_csv(
        folder / "runs" / "multi.run.gz",
        sep=" ",
        header=None,
        names=["query_id", "Q0", "doc_id", "rank", "score", "tag"],
        dtype={"score": str},
    )
    assert set(lines.Q0) == {"Q0"} and set(lines.tag) == {"strategy/profile/0"}
    first = lines[lines.query_id == lines.query_id[0]]
    qid, lang = first.query_id.iloc[0].split(">")[0].split(":")
    row = np.flatnonzero((questions.qid == qid).to_numpy() & (questions.lang == lang).to_numpy())[0]
    top, scores = exact_top_k(q[row : row + 1], p, 100)
    assert first.doc_id.tolist() == candidates.candidate_id.to_numpy()[top[0]].tolist()
    assert first["rank"].tolist() == list(range(1, 101))
    written = first.score.astype(np.float64).to_numpy().astype(np.float32)
    assert (similarity_scores(q[row : row + 1], p)[0, top[0]] == scores[0]).all()
    # Exact scores, except that a score tied with the one above it steps one float32 below that one.
    tied = np.append(False, scores[0, 1:] == scores[0, :-1])
    assert tied.any() and (written[~tied] == scores[0, ~tied]).all()
    assert (written[tied] == np.nextafter(written[np.flatnonzero(tied) - 1], np.float32(-1))).all()
    assert (np.diff(written) < 0).all()


def test_tied_scores_step_down_one_float32_at_a_time():
    scores = np.array([[0.5, 0.5, 0.5, 0.25, 0.0, 0.0, 0.0, -1.0]], dtype=np.float32)
    run = scored_top_k_run(["q"], np.arange(8)[None, :], [f"d{i}" for i in range(8)], scores)
    written = run.score.to_numpy().astype(np.float32)
    down = lambda x, n: x if n == 0 else down(np.nextafter(x, np.float32(-1)), n - 1)  # noqa: E731
    expected = [down(np.float32(v), n) for v, n in zip(scores[0], [0, 1, 2, 0, 0, 1, 2, 0])]
    assert written.tolist() == [float(e) for e in expected]
    # A score is written as its shortest float32 decimal, which keeps the files small and reads back exactly.
    untied = scored_top_k_run(
        ["q"], np.array([[0, 1]]), ["a", "b"], np.array([[0.1, 0.05]], dtype=np.float32)
    ).score.tolist()
    assert untied == [0.1, 0.05]
    with pytest.raises(MlretError, match="float32"):
        scored_top_k_run(["q"], np.array([[0, 1]]), ["a", "b"], np.array([[0.1, 0.05]]))
