"""Reading and writing the pipeline's artifacts (Parquet tables, JSON metrics).

Stages hand data to each other only through these files. Writes are atomic
(temporary file, then rename) so an interrupted stage never leaves a file that
looks complete, and a failed write (full disk, read-only folder) names the
artifact it was writing; reads check the columns a stage relies on and say which
upstream stage to re-run when they are missing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlret.errors import MlretError


def _new_temp_file(path: Path) -> tuple[int, Path]:
    """An exclusive new file beside ``path`` (same file system, so the final rename is atomic).

    It is created with mode 0666 less the process umask, as ``open`` would
    create ``path`` itself: the rename keeps the mode, and ``tempfile.mkstemp``'s
    0600 would leave every artifact unreadable to the rest of a shared group.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def _naming_target(err: OSError, path: Path) -> OSError:
    """The same error, naming ``path`` instead of our hidden temporary file (or of nothing).

    A full disk shows up on ``write``/``close`` of an open file, where Python
    and pyarrow give no file name; the user needs to know which artifact failed.
    """
    if err.errno is None:
        return err
    return OSError(err.errno, err.strerror, str(path))


def _write_atomically(path: Path, write: Callable[[int, Path], None]) -> None:
    """Run ``write`` on a fresh temporary file (its descriptor and name), then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = _new_temp_file(path)
        try:
            write(fd, tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
    except OSError as err:
        raise _naming_target(err, path) from err


def write_bytes(path: str | Path, payload: bytes) -> None:
    def write(fd: int, tmp: Path) -> None:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)

    _write_atomically(Path(path), write)


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
    table = pa.Table.from_pandas(frame, preserve_index=False)

    def write(fd: int, tmp: Path) -> None:
        os.close(fd)
        pq.write_table(table, tmp)  # rewrites the file in place: its mode stays

    _write_atomically(Path(path), write)


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
