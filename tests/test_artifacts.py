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

from mlret.artifacts import (
    atomic_path,
    current_umask,
    read_json,
    read_table,
    set_default_modes,
    staged_dir,
    write_bytes,
    write_json,
    write_table,
)

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


def test_atomic_path_for_writers_that_want_a_name(tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    path = tmp_path / "index" / "all.faiss"
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(".all.faiss.") and tmp.stat().st_size == 0
        with open(tmp, "wb") as handle:  # what FAISS and np.save do with a name
            handle.write(b"index bytes")
        assert not path.exists()
    assert path.read_bytes() == b"index bytes" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["all.faiss"]


def test_atomic_path_keeps_the_name_of_another_file_that_failed(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    path.write_bytes(b"previous")
    with pytest.raises(FileNotFoundError) as err, atomic_path(path):
        (tmp_path / "missing-input.json").read_bytes()
    assert err.value.filename == str(tmp_path / "missing-input.json")
    assert path.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_names_up_to_the_file_system_limit(tmp_path: Path) -> None:
    longest = tmp_path / ("n" * 250 + ".json")  # 255 bytes: legal, but no room for a temporary suffix
    write_json(longest, [1])
    assert read_json(longest) == [1]
    too_long = tmp_path / ("n" * 300 + ".json")
    with pytest.raises(OSError) as err:
        write_json(too_long, [1])
    assert err.value.errno == errno.ENAMETOOLONG and err.value.filename == str(too_long)


def test_current_umask_reads_without_changing(umask: None) -> None:
    os.umask(0o027)
    assert current_umask() == 0o027
    assert current_umask() == 0o027  # still set
    assert os.umask(0o022) == 0o027


def test_set_default_modes_opens_private_trees(tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    root = tmp_path / "checkpoint"
    (root / "sub").mkdir(parents=True)
    weights, nested = root / "model.safetensors", root / "sub" / "tokenizer.json"
    outside = tmp_path / "private.key"
    for file in (weights, nested, outside):
        file.write_bytes(b"x")
        file.chmod(0o600)
    (root / "link").symlink_to(outside)
    root.chmod(0o700)
    os.umask(0o027)
    set_default_modes(root)
    assert stat.S_IMODE(root.stat().st_mode) == stat.S_IMODE((root / "sub").stat().st_mode) == 0o750
    assert stat.S_IMODE(weights.stat().st_mode) == stat.S_IMODE(nested.stat().st_mode) == 0o640
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600  # not changed through the link


def test_failing_to_create_the_temporary_file_names_the_artifact(tmp_path: Path) -> None:
    """No file descriptor left (EMFILE) stands in for a read-only folder, which root could still write."""
    path = tmp_path / "metrics.json"
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        with pytest.raises(OSError) as err:
            write_json(path, {"map": 0.5})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert err.value.errno == errno.EMFILE
    assert err.value.filename == str(path)  # not the hidden temporary name
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("previous", ["nothing", "folder", "file", "link"])
def test_a_staged_folder_replaces_whatever_was_there_in_one_rename(previous: str, tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    target, elsewhere = tmp_path / "models" / "run", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("not ours to delete")
    target.parent.mkdir()
    if previous == "folder":
        target.mkdir()
        (target / "stale").write_text("old")
    elif previous == "file":
        target.write_text("old")
    elif previous == "link":
        target.symlink_to(elsewhere)
    with staged_dir(target) as folder:
        (folder / "weights").write_bytes(b"new")
        os.chmod(folder / "weights", 0o600)  # as safetensors writes them
    assert sorted(p.name for p in target.iterdir()) == ["weights"] and not target.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 and stat.S_IMODE((target / "weights").stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["run"], "no staging or old folder is left behind"
    assert (elsewhere / "keep").read_text() == "not ours to delete", "a replaced link's target is kept"


def test_a_failed_staged_folder_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    (target / "weights").write_bytes(b"old")
    with pytest.raises(RuntimeError), staged_dir(target) as folder:
        (folder / "weights").write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and (target / "weights").read_bytes() == b"old"


def test_a_full_disk_under_faiss_names_the_index(tmp_path: Path) -> None:
    """FAISS reports a failed write as RuntimeError('... (File too large)'); it reaches the user as that OS error on
    the index file."""
    import numpy as np

    from mlret.params import IndexParams
    from mlret.scoring.index import build_index, save_index

    pool = np.eye(64, dtype=np.float32)
    path = tmp_path / "all.faiss"
    with file_size_cap(), pytest.raises(OSError) as err:
        save_index(build_index(pool, IndexParams("flat")), path)
    assert err.value.errno == errno.EFBIG and err.value.filename == str(path)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_under_safetensors_names_the_staged_folder(tmp_path: Path) -> None:
    """safetensors reports it as SafetensorError('... (os error 27)'); the checkpoint folder keeps its previous
    content."""
    import torch
    from safetensors.torch import save_file

    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "old.json").write_text("{}")
    with file_size_cap(), pytest.raises(OSError) as err, staged_dir(target) as staging:
        save_file({"w": torch.zeros(4096)}, str(staging / "model.safetensors"))
    assert err.value.errno == errno.EFBIG and err.value.filename == str(target)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"] and [p.name for p in target.iterdir()] == ["old.json"]


def test_a_staged_folder_that_cannot_be_created_is_named_by_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only output folder (which root, running the tests, could still write: so the refusal is made by hand)."""
    import tempfile

    def refuse(prefix: str, dir: str) -> str:
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, prefix + "x1y2"))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(PermissionError) as err, staged_dir(tmp_path / "checkpoints" / "run"):
        pass
    assert err.value.filename == str(tmp_path / "checkpoints" / "run")


def test_a_flipped_byte_in_a_number_is_caught_by_the_page_checksum(tmp_path: Path) -> None:
    """Without a checksum a changed byte inside an integer column reads back as another integer, with no error at
    all."""
    from mlret.errors import MlretError

    middle = 0x0123456789ABCDEF  # neither the column's min nor its max, so its bytes are in the data page only
    path = tmp_path / "t.parquet"
    write_table(path, pd.DataFrame({"qid": ["a", "b", "c"], "article": [1, middle, 2**62]}))
    data = bytearray(path.read_bytes())
    at = data.find(middle.to_bytes(8, "little"))
    assert at >= 0 and data.find(middle.to_bytes(8, "little"), at + 1) < 0
    data[at + 3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(MlretError, match=r"t\.parquet: not a readable Parquet file \(.*(?i:checksum|crc)"):
        read_table(path, ["qid", "article"], "parallelise")
