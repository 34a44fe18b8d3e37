"""What each dataset is evaluated on, and the embedding files stored for it.

The training source is evaluated on its test articles only (in-domain); every
other LAReQA dataset in full (zero-shot); a BEIR-layout benchmark one language
folder at a time. Encoding (torch) writes the embedding files and scoring
(numpy, FAISS) reads them in another process, so this module, which both use,
imports neither.

An embedding file ``{name}.npy`` (float32, one row per text) sits next to
``{name}.ids.parquet``, the ids of its rows in order. Reading compares those ids
with the current tables, so embeddings of data that changed after encoding
fail here, by name, rather than giving wrong numbers.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlret.artifacts import read_json, read_table, write_bytes, write_table
from mlret.data.beir import BeirDataset
from mlret.data.parallel import CANDIDATE_COLUMNS, CANDIDATE_KINDS, QUESTION_COLUMNS, QUESTION_KINDS
from mlret.errors import MlretError
from mlret.params import CORPORA, Corpora, Params

#: Columns that identify a row of each LAReQA table (a question id exists once per language).
QUESTION_IDS = ["qid", "lang"]
CANDIDATE_IDS = ["candidate_id", "lang"]


@dataclass(frozen=True)
class EvalCorpora:
    """Where the evaluated datasets are, and which one was split for training."""

    parallel_root: Path
    articles_path: Path  # the training source's split by article
    train_source: str
    datasets: list[str]
    beir: Mapping[str, str] = field(default_factory=dict)  # benchmark name -> folder of language subfolders

    @classmethod
    def from_params(
        cls, params: Params, parallel_root: str | Path, articles_path: str | Path, corpora: Corpora = Corpora.ALL
    ) -> EvalCorpora:
        """Every dataset of params.yaml (``data.sources``) and every benchmark of ``eval.beir``,
        or, for ``in_domain``, only the training source's test articles."""
        if Corpora(corpora) is Corpora.IN_DOMAIN:
            return cls(Path(parallel_root), Path(articles_path), params.data.train_source, [params.data.train_source])
        return cls(
            Path(parallel_root),
            Path(articles_path),
            params.data.train_source,
            params.data.eval_sources,
            dict(params.eval.beir),
        )

    def pool_label(self, dataset: str) -> str:
        return pool_label(dataset, self.train_source)

    def tables(self, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        return load_eval_tables(self.parallel_root, dataset, self.train_source, self.articles_path)


def pool_label(dataset: str, train_source: str) -> str:
    """What a dataset's candidate pool is, stated wherever its numbers appear.

    The training source's pool is its test articles only (XQuAD-R: 14 articles, 3,552
    candidates, not LAReQA's 13,014), so its numbers are not comparable with the paper's;
    a zero-shot dataset is scored on its full LAReQA pool.
    """
    return "in-domain test articles" if dataset == train_source else "full pool, zero-shot"


def add_corpora_arguments(parser: argparse.ArgumentParser) -> None:
    """The two inputs every evaluation stage (encode, index, evaluate) reads; dvc.yaml passes them."""
    parser.add_argument("parallel_root", help="parallelised datasets (data/parallel)")
    parser.add_argument("articles", help="the training source's split by article (data/splits/articles.json)")
    parser.add_argument(
        "--corpora",
        choices=CORPORA,
        default=Corpora.ALL.value,
        help="all: in-domain test pool, zero-shot datasets and BEIR (default); "
        "in_domain: the training source's test articles only",
    )


def load_eval_tables(
    parallel_root: str | Path, dataset: str, train_source: str, articles_path: str | Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Questions and candidates of ``dataset`` that evaluation uses, in a fixed order."""
    folder = Path(parallel_root) / dataset
    questions = read_table(
        folder / "questions.parquet", QUESTION_COLUMNS, "parallelise", kinds=QUESTION_KINDS, unique=["qid", "lang"]
    )
    candidates = read_table(
        folder / "candidates.parquet", CANDIDATE_COLUMNS, "parallelise", kinds=CANDIDATE_KINDS, unique=["candidate_id"]
    )
    if dataset == train_source:
        test = test_articles(articles_path)
        questions = questions[questions.article.isin(test)]
        candidates = candidates[candidates.article.isin(test)]
    return questions.reset_index(drop=True), candidates.reset_index(drop=True)


def test_articles(articles_path: str | Path) -> set[int]:
    """The training source's test articles, from the split stage's articles.json (``{"test": [article, ...], ...}``)."""
    split = read_json(articles_path)
    test = split.get("test") if isinstance(split, dict) else None
    if not isinstance(test, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in test):
        raise MlretError(
            f"{articles_path}: expected a mapping whose `test` key lists article numbers.",
            "The file is corrupt or was changed by hand; delete it and run `dvc repro split`.",
        )
    return set(test)


def beir_languages(folder: str | Path) -> list[Path]:
    """The language subfolders of a BEIR-layout benchmark, each its own retrieval task."""
    found = sorted(p for p in Path(folder).iterdir() if p.is_dir()) if Path(folder).is_dir() else []
    if not found:
        raise MlretError(
            f"{folder}: no language subfolders.",
            "Lay the benchmark out as {folder}/{lang}/corpus.jsonl, queries.jsonl, qrels/test.tsv.",
        )
    return found


def save_embeddings(
    out_dir: str | Path,
    questions: pd.DataFrame,
    candidates: pd.DataFrame,
    question_emb: np.ndarray,
    candidate_emb: np.ndarray,
) -> None:
    save_rows(out_dir, "questions", questions[QUESTION_IDS], question_emb)
    save_rows(out_dir, "candidates", candidates[CANDIDATE_IDS], candidate_emb)


def load_embeddings(
    emb_dir: str | Path, questions: pd.DataFrame, candidates: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings whose rows are checked to follow the tables' order (a stale file fails here, not in a metric)."""
    return load_rows(emb_dir, "questions", questions[QUESTION_IDS]), load_candidate_embeddings(emb_dir, candidates)


def load_candidate_embeddings(emb_dir: str | Path, candidates: pd.DataFrame) -> np.ndarray:
    return load_rows(emb_dir, "candidates", candidates[CANDIDATE_IDS])


def save_beir_embeddings(out_dir: str | Path, data: BeirDataset, query_emb: np.ndarray, corpus_emb: np.ndarray) -> None:
    save_rows(out_dir, "queries", data.queries[["query_id"]], query_emb)
    save_rows(out_dir, "corpus", data.corpus[["doc_id"]], corpus_emb)


def load_beir_embeddings(emb_dir: str | Path, data: BeirDataset) -> tuple[np.ndarray, np.ndarray]:
    return load_rows(emb_dir, "queries", data.queries[["query_id"]]), load_rows(
        emb_dir, "corpus", data.corpus[["doc_id"]]
    )


def save_rows(out_dir: str | Path, name: str, ids: pd.DataFrame, emb: np.ndarray) -> None:
    """``{name}.npy`` and ``{name}.ids.parquet``; each file is written atomically."""
    if len(ids) != len(emb):
        raise MlretError(
            f"{name}: {len(emb)} embeddings for {len(ids)} rows.", "Encode every row of the table, in order."
        )
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(emb).astype(np.float32, copy=False))
    write_bytes(Path(out_dir) / f"{name}.npy", buffer.getvalue())
    write_table(Path(out_dir) / f"{name}.ids.parquet", ids.reset_index(drop=True))


def load_rows(emb_dir: str | Path, name: str, ids: pd.DataFrame) -> np.ndarray:
    """``{name}.npy``, after checking that its stored row ids are exactly ``ids``, in order."""
    path = Path(emb_dir) / f"{name}.npy"
    if not path.is_file():
        raise MlretError(f"{path}: not found.", "Run the encode stage for this model first (`dvc repro`).")
    stored = read_table(Path(emb_dir) / f"{name}.ids.parquet", list(ids.columns), "encode")
    if not stored.reset_index(drop=True).equals(ids.reset_index(drop=True)):
        raise MlretError(
            f"{path}: rows do not match the current {name} table (the data changed after encoding).",
            "Re-run the encode stage (`dvc repro`).",
        )
    try:
        emb = np.load(path)
    except (ValueError, OSError) as err:
        raise MlretError(
            f"{path}: not a readable .npy file ({err}).", "Delete it and re-run the encode stage (`dvc repro`)."
        ) from None
    if emb.ndim != 2 or len(emb) != len(ids):
        raise MlretError(
            f"{path}: shape {emb.shape}, but {len(ids)} rows are listed beside it.",
            "Delete it and re-run the encode stage (`dvc repro`).",
        )
    return emb
