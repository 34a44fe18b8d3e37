"""Reading and writing the pipeline's artifacts (Parquet tables, JSON metrics, folders such as checkpoints).

Stages hand data to each other only through these files. Writes are atomic
(temporary file or folder, then rename; :func:`atomic_path` and
:func:`staged_dir` are the only two ways the package writes an artifact) so an
interrupted stage never leaves a file or folder that looks complete; files get the mode the umask gives any new file (0644 under the
usual 022), and a failed write (full disk, read-only folder) names the artifact
it was writing. Reads check the columns a stage relies on and say which
upstream stage to re-run when they are missing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlret.errors import MlretError


def _new_temp_file(path: Path) -> Path:
    """An exclusive new, empty file beside ``path`` (same file system, so the final rename is atomic).

    It is created with mode 0666 less the process umask, as ``open`` would
    create ``path`` itself: the rename keeps the mode, and ``tempfile.mkstemp``'s
    0600 would leave every artifact unreadable to the rest of a shared group.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # cut, so that a long (but legal) name still leaves room for the suffix
        tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(4)}")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        except OSError as err:  # e.g. a read-only folder: name the artifact, not the temporary file
            raise OSError(err.errno, err.strerror, str(path)) from err
        return tmp
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def _naming_target(err: OSError, path: Path, tmp: Path | None) -> OSError:
    """The same error, naming ``path`` where it named our temporary file, or nothing.

    A full disk shows up on ``write``/``close`` of an open file, where Python
    and pyarrow give no file name; the user needs to know which artifact failed.
    An error about some other file (one the caller read inside the block) keeps its name.
    """
    named = err.filename
    if err.errno is None or (named is not None and (tmp is None or os.fsdecode(named) != str(tmp))):
        return err
    return OSError(err.errno, err.strerror, str(path))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A fresh temporary file beside ``path``, renamed to ``path`` when the block succeeds.

    For writers that want a file name (pyarrow, FAISS, ``np.save``): the block
    writes into the yielded file, which keeps its ordinary mode as long as the
    writer opens it rather than replacing it. If the block fails, the temporary
    file is deleted and ``path`` keeps its previous content; an ``OSError``
    (full disk, read-only folder) is re-raised naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        tmp = _new_temp_file(path)
        try:
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
    except OSError as err:
        raise _naming_target(err, path, tmp) from err


@contextlib.contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A fresh, empty folder beside ``target`` that replaces ``target`` in one rename when the block succeeds.

    For artifacts that are folders (model checkpoints, resumable training
    state): the block fills the yielded folder, which then gets the modes
    ``mkdir`` and ``open`` would give (writers such as safetensors create
    private files) and takes ``target``'s place. ``target`` is never half
    written: if the block fails, the folder is deleted and ``target`` keeps its
    previous content.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        set_default_modes(staging)
        _replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_dir(new: Path, target: Path) -> None:
    """Move the folder ``new`` to ``target``, replacing whatever ``target`` was (a folder, a file or a link)."""
    if not (target.exists() or target.is_symlink()):
        new.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    new.rename(target)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def write_bytes(path: str | Path, payload: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    ``os.umask`` can only be read by setting it, which briefly affects files
    that other threads create; Linux reports it in /proc instead.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def set_default_modes(root: str | Path) -> None:
    """Give ``root`` and everything below it the modes ``open`` and ``mkdir`` would have.

    Some writers create private files (safetensors' ``save_file`` and anything
    built on ``tempfile`` use 0600, ``tempfile.mkdtemp`` 0700); a checkpoint or
    an artifact folder should be readable wherever its folder is. Symbolic
    links are left alone, and no file is made executable.
    """
    mask = current_umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            file = os.path.join(folder, name)
            if not os.path.islink(file):
                os.chmod(file, 0o666 & ~mask)


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


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (an artifact's identity, as DVC hashes it by content)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_table(path: str | Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


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
    require_columns(frame, wanted, path, produced_by)
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: str | Path, produced_by: str) -> None:
    """Insist that an artifact read from ``path`` has the columns its reader uses."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MlretError(
            f"{path}: missing column(s) {missing}; found {list(frame.columns)}.",
            f"The file comes from an older or foreign version; run `dvc repro {produced_by}`.",
        )
