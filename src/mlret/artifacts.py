"""Reading and writing the pipeline's artifacts (Parquet tables, JSON metrics, folders such as checkpoints).

Stages hand data to each other only through these files. Writes are atomic
(temporary file or folder, then rename; :func:`atomic_path` and
:func:`staged_dir` are the only two ways the package writes an artifact) so an
interrupted stage never leaves a file or folder that looks complete; files get
the mode the umask gives any new file (0644 under the usual 022), and a failed
write (full disk, read-only folder) names the artifact it was writing. Reads
check the columns a stage relies on and say which upstream stage to re-run when
they are missing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlret.errors import MlretError


def _new_temp_file(path: Path, created: list[Path]) -> Path:
    """An exclusive new, empty file beside ``path`` (same file system, so the final rename is atomic).

    It is created with mode 0666 less the process umask, as ``open`` would
    create ``path`` itself: the rename keeps the mode, and ``tempfile.mkstemp``'s
    0600 would leave every artifact unreadable to the rest of a shared group.
    Each name is put in ``created`` before the file is made, so that a caller
    interrupted at any point (Ctrl-C, or a stop request raised in the main
    thread) knows what to delete.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # cut, so that a long (but legal) name still leaves room for the suffix
        tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(4)}")
        created.append(tmp)
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            created.remove(tmp)  # another writer's file
            continue
        except OSError as err:  # e.g. a read-only folder: name the artifact, not the temporary file
            raise OSError(err.errno, err.strerror, str(path)) from err
        return tmp
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def _naming_target(err: OSError, path: Path, tmp: Path | None) -> OSError:
    """The same error, naming ``path`` where it named our temporary file or folder (or anything in it), or nothing.

    A full disk shows up on ``write``/``close`` of an open file, where Python
    and pyarrow give no file name; the user needs to know which artifact failed,
    by the name they know rather than a temporary one.
    An error about some other file (one the caller read inside the block) keeps its name.
    """
    named = None if err.filename is None else os.fsdecode(err.filename)
    inside = tmp is not None and named is not None and (named == str(tmp) or named.startswith(str(tmp) + os.sep))
    if err.errno is None or (named is not None and not inside):
        return err
    return OSError(err.errno, err.strerror, str(path))


_OS_ERROR_NUMBER = re.compile(r"\(os error (\d+)\)")  # Rust's io::Error (safetensors, tokenizers)
_REASONS = {
    os.strerror(code): code for code in sorted(errno.errorcode, reverse=True)
}  # C's strerror in parentheses (FAISS)


def os_error_of(err: BaseException) -> OSError | None:
    """The operating-system error behind ``err``, for libraries that report one as their own exception.

    safetensors raises ``SafetensorError(... (os error 28))`` and FAISS
    ``RuntimeError(... (No space left on device))`` for a full disk; as
    ``OSError`` they get the same one-line message and fix as Python's own.
    """
    if isinstance(err, OSError):
        return err
    if isinstance(err, MlretError):
        return None
    text = str(err)
    number = _OS_ERROR_NUMBER.search(text)
    code = (
        int(number.group(1)) if number else next((c for reason, c in _REASONS.items() if f"({reason})" in text), None)
    )
    return None if code is None else OSError(code, os.strerror(code))


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
    created: list[Path] = []
    tmp: Path | None = None
    try:
        try:
            tmp = _new_temp_file(path, created)
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            for name in created:  # also a file made just before an interruption reached us
                with contextlib.suppress(OSError):
                    name.unlink(missing_ok=True)
            raise
    except Exception as err:
        found = os_error_of(err)
        if found is None:
            raise
        raise _naming_target(found, path, tmp) from err


@contextlib.contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A fresh, empty folder beside ``target`` that replaces ``target`` in one rename when the block succeeds.

    For artifacts that are folders (model checkpoints, resumable training
    state): the block fills the yielded folder, which then gets the modes
    ``mkdir`` and ``open`` would give (writers such as safetensors create
    private files) and takes ``target``'s place. ``target`` is never half
    written: if the block fails, the folder is deleted and ``target`` keeps its
    previous content. An ``OSError``, or a library's error for one (see
    :func:`os_error_of`), is re-raised naming ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:200]}.tmp-", dir=target.parent))
    except OSError as err:  # e.g. a read-only folder: name the artifact, not the temporary folder it could not create
        raise OSError(err.errno, err.strerror, str(target)) from err
    try:
        try:
            yield staging
            set_default_modes(staging)
            _replace_dir(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except Exception as err:
        found = os_error_of(err)
        if found is None:
            raise
        raise _naming_target(found, target, staging) from err


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
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/self/status", encoding="ascii", errors="replace") as status,
    ):
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
    """A Parquet file whose pages carry a CRC, so that :func:`read_table` notices a changed byte in any value."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)


_KINDS: dict[type, tuple[str, Any]] = {
    int: ("integers", pd.api.types.is_integer_dtype),
    str: ("text", pd.api.types.is_string_dtype),
    bool: ("true/false values", pd.api.types.is_bool_dtype),
}


def read_table(
    path: str | Path,
    columns: Iterable[str],
    produced_by: str,
    *,
    kinds: Mapping[str, type] | None = None,
    unique: Sequence[str] = (),
) -> pd.DataFrame:
    """Load a Parquet artifact and insist on what the caller relies on, blaming the file when it is wrong.

    Always: the pages' checksums (where the writer stored them, as
    :func:`write_table` does: without one, a flipped byte in a number reads
    back as another number), the columns the caller uses, at least one row, text that is valid
    UTF-8 and no missing (null) values in those columns, floats aside (NaN is
    a value there). On request: the kind of values of some columns (``kinds``,
    e.g. ``{"article": int}``) and no repeated key (``unique``). A corrupt or
    hand-edited file would otherwise fail later in whatever first touched the
    bad value, or be blamed on params.yaml.
    """
    path = Path(path)
    wanted = list(columns)
    redo = f"The file is corrupt or was changed by hand; delete it and run `dvc repro {produced_by}`."
    if not path.exists():
        raise MlretError(f"{path}: file not found.", f"Run `dvc repro {produced_by}` first.")
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowInvalid, OSError) as err:
        raise MlretError(
            f"{path}: not a readable Parquet file ({err}).", f"Delete it and run `dvc repro {produced_by}`."
        ) from None
    require_columns(pd.DataFrame(columns=table.column_names), wanted, path, produced_by)
    for name in wanted:
        column = table.column(name)
        try:
            column.validate(full=True)
        except pa.ArrowInvalid as err:
            raise MlretError(f"{path}: column {name!r} is damaged ({str(err).splitlines()[0]}).", redo) from None
        if column.null_count and not pa.types.is_floating(column.type):
            raise MlretError(f"{path}: column {name!r} has {column.null_count} missing (null) value(s).", redo)
    if table.num_rows == 0:
        raise MlretError(f"{path}: the table has no rows.", redo)
    frame = table.to_pandas()
    for name, kind in (kinds or {}).items():
        noun, is_kind = _KINDS[kind]
        if not is_kind(frame[name]):
            raise MlretError(f"{path}: column {name!r} should hold {noun}, but holds {frame[name].dtype}.", redo)
    if unique and frame.duplicated(list(unique)).any():
        first = frame[frame.duplicated(list(unique))].iloc[0]
        key = ", ".join(f"{c} = {first[c]!r}" for c in unique)
        raise MlretError(f"{path}: the row with {key} appears more than once.", redo)
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: str | Path, produced_by: str) -> None:
    """Insist that an artifact read from ``path`` has the columns its reader uses."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MlretError(
            f"{path}: missing column(s) {missing}; found {list(frame.columns)}.",
            f"The file comes from an older or foreign version; run `dvc repro {produced_by}`.",
        )
