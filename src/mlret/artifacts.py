"""Reading and writing the pipeline's artifacts (Parquet tables, JSON metrics).

Stages hand data to each other only through these files. Writes are atomic
(temporary file, then rename) so an interrupted stage never leaves a file that
looks complete; reads check the columns a stage relies on and say which
upstream stage to re-run when they are missing.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlret.errors import MlretError


def _atomic_target(path: Path) -> tuple[int, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    return fd, Path(tmp)


def write_bytes(path: str | Path, payload: bytes) -> None:
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, payload: Any) -> None:
    """Pretty, key-sorted JSON: metrics files are diffed by git and by `dvc metrics diff`."""
    write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MlretError(f"{path}: file not found.", "Run the stage that produces it (`dvc repro`).") from None
    except json.JSONDecodeError as err:
        raise MlretError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}).",
            "The file is truncated or corrupt; delete it and re-run the stage that produces it.",
        ) from None


def write_table(path: str | Path, frame: pd.DataFrame) -> None:
    path = Path(path)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_table(path: str | Path, columns: Iterable[str], produced_by: str) -> pd.DataFrame:
    """Load a Parquet artifact and insist on the columns the caller uses."""
    path = Path(path)
    wanted = list(columns)
    if not path.exists():
        raise MlretError(f"{path}: file not found.", f"Run `dvc repro {produced_by}` first.")
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise MlretError(f"{path}: not a readable Parquet file ({err}).", f"Delete it and run `dvc repro {produced_by}`.") from None
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise MlretError(
            f"{path}: missing column(s) {missing}; found {list(frame.columns)}.",
            f"The file comes from an older or foreign version; run `dvc repro {produced_by}`.",
        )
    return frame
