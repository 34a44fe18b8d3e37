"""The artifact writers: atomic, ordinary file modes, and failures that name the artifact."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlret.artifacts import read_json, read_table, write_bytes, write_json, write_table

FRAME = pd.DataFrame({"qid": ["q1", "q2"], "lang": ["ru", "zh"], "text": ["река течёт", "河流"]})


def _write(kind: str, path: Path) -> None:
    if kind == "bytes":
        write_bytes(path, b"\x93NUMPY" + bytes(5000))
    elif kind == "json":
        write_json(path, {"map": 0.5, "lang": "ελληνικά", "rows": list(range(1000))})
    else:
        write_table(path, pd.concat([FRAME] * 500, ignore_index=True))


KINDS = ["bytes", "json", "table"]


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process umask a test sets."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_allows(kind: str, mask: int, mode: int, tmp_path: Path, umask: None) -> None:
    os.umask(mask)
    path = tmp_path / "new" / f"artifact.{kind}"
    _write(kind, path)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_round_trips(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"b": 1, "a": ["река", 2.5]})
    assert read_json(tmp_path / "m.json") == {"a": ["река", 2.5], "b": 1}
    assert (tmp_path / "m.json").read_text(encoding="utf-8") == '{\n  "a": [\n    "река",\n    2.5\n  ],\n  "b": 1\n}\n'
    write_table(tmp_path / "t.parquet", FRAME)
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet", ["qid", "text"], "parallelise"), FRAME)
    write_bytes(tmp_path / "raw.bin", b"\x00\xff")
    assert (tmp_path / "raw.bin").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "raw.bin", "t.parquet"]  # no temporary files


@contextlib.contextmanager
def file_size_cap(limit: int = 1000) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG, as a full disk fails a write half-way through a file.

    A real ENOSPC needs a full file system; `ulimit -f` fails the same write
    calls after raising SIGXFSZ, which is ignored here so that the call returns the error.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.parametrize("kind", KINDS)
def test_failed_write_names_the_artifact_and_keeps_the_old_one(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"artifact.{kind}"
    path.write_bytes(b"previous good version")
    with file_size_cap(), pytest.raises(OSError) as err:
        _write(kind, path)
    assert err.value.errno == errno.EFBIG
    assert err.value.filename == str(path)  # not a hidden temporary name, not None
    assert path.read_bytes() == b"previous good version"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temporary file is gone


def test_errors_that_name_a_folder_keep_it(tmp_path: Path) -> None:
    (tmp_path / "metrics").write_text("a file where a folder should be")
    with pytest.raises(NotADirectoryError) as err:
        write_json(tmp_path / "metrics" / "eval" / "base.json", {})
    assert err.value.filename == str(tmp_path / "metrics" / "eval")
