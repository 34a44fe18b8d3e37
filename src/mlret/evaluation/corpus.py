"""What each dataset is evaluated on, and the embeddings stored for it.

The training source is evaluated on its test articles only (in-domain); every
other dataset in full (zero-shot). Encoding (torch) and scoring (FAISS, numpy)
run in different processes, so this module, which both use, imports neither.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from mlret.artifacts import read_json, read_table, write_bytes, write_table
from mlret.data.parallel import CANDIDATE_COLUMNS, QUESTION_COLUMNS
from mlret.errors import MlretError


def load_eval_tables(parallel_root: str | Path, dataset: str, train_source: str, articles_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Questions and candidates of ``dataset`` that evaluation uses, in a fixed order."""
    folder = Path(parallel_root) / dataset
    questions = read_table(folder / "questions.parquet", QUESTION_COLUMNS, "parallelise")
    candidates = read_table(folder / "candidates.parquet", CANDIDATE_COLUMNS, "parallelise")
    if dataset == train_source:
        test = set(read_json(articles_path)["test"])
        questions = questions[questions.article.isin(test)]
        candidates = candidates[candidates.article.isin(test)]
    return questions.reset_index(drop=True), candidates.reset_index(drop=True)


def save_embeddings(out_dir: str | Path, questions: pd.DataFrame, candidates: pd.DataFrame, question_emb: np.ndarray, candidate_emb: np.ndarray) -> None:
    out_dir = Path(out_dir)
    for name, ids, emb in (("questions", questions[["qid", "lang"]], question_emb), ("candidates", candidates[["candidate_id", "lang"]], candidate_emb)):
        buffer = io.BytesIO()
        np.save(buffer, emb.astype(np.float32, copy=False))
        write_bytes(out_dir / f"{name}.npy", buffer.getvalue())
        write_table(out_dir / f"{name}.ids.parquet", ids)


def load_embeddings(emb_dir: str | Path, questions: pd.DataFrame, candidates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings whose rows are checked to follow the tables' order (a stale file fails here, not in a metric)."""
    emb_dir = Path(emb_dir)
    out = []
    for name, ids in (("questions", questions[["qid", "lang"]]), ("candidates", candidates[["candidate_id", "lang"]])):
        path = emb_dir / f"{name}.npy"
        if not path.is_file():
            raise MlretError(f"{path}: not found.", "Run the encode stage for this model first (`dvc repro`).")
        stored = read_table(emb_dir / f"{name}.ids.parquet", list(ids.columns), "encode")
        if not stored.reset_index(drop=True).equals(ids.reset_index(drop=True)):
            raise MlretError(
                f"{path}: rows do not match the current {name} table (the data changed after encoding).",
                "Re-run the encode stage (`dvc repro`).",
            )
        out.append(np.load(path))
    return out[0], out[1]
