"""What a stage prints when it fails: one `error:` line and a fix, never a traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlret.artifacts import write_json
from mlret.errors import MlretError, cli_errors


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLRET_DEBUG", raising=False)


def _run(stage, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run a decorated stage; its exit status and everything it printed to stderr."""
    with pytest.raises(SystemExit) as exit_:
        cli_errors(stage)()
    captured = capsys.readouterr()
    assert captured.out == ""
    return exit_.value.code, captured.err  # type: ignore[return-value]


def test_mlret_error_is_two_lines_and_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    def stage() -> None:
        raise MlretError("params.yaml: train.batch_size = 0 must be positive.", "Set train.batch_size to 1 or more.")

    code, err = _run(stage, capsys)
    assert code == 1
    assert (
        err == "error: params.yaml: train.batch_size = 0 must be positive.\n       Set train.batch_size to 1 or more.\n"
    )


def test_success_passes_the_return_value_through() -> None:
    assert cli_errors(lambda x: x + 1)(41) == 42


@pytest.mark.parametrize(
    "raised", [MlretError("bad input", "fix it"), PermissionError(errno.EACCES, "Permission denied", "out/x.json")]
)
def test_debug_shows_the_traceback(
    raised: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def stage() -> None:
        raise raised

    monkeypatch.setenv("MLRET_DEBUG", "1")
    with pytest.raises(type(raised)) as err:
        cli_errors(stage)()
    assert err.value is raised
    assert capsys.readouterr().err == ""


def test_writing_below_a_file_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real behaviour: the output folder's parent is a regular file (ENOTDIR), as when a path is mistyped."""
    (tmp_path / "metrics").write_text("not a folder")
    code, err = _run(lambda: write_json(tmp_path / "metrics" / "eval" / "base.json", {"map": 0.5}), capsys)
    assert code == 1
    assert "Traceback" not in err
    first, fix, end = err.split("\n")
    assert first == f"error: {tmp_path / 'metrics' / 'eval'}: Not a directory"
    assert (
        fix.strip() == "A part of that path is a file where a folder is expected: move the file away or fix the path."
    )
    assert end == ""


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full device (Linux has one)")
def test_full_disk_is_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Real ENOSPC: every write to /dev/full fails the way a full disk does, on flush, with no file name."""

    def stage() -> None:
        with open("/dev/full", "r+b") as handle:  # never "wb": that would create a file if the device were missing
            handle.write(b"{}")

    code, err = _run(stage, capsys)
    assert code == 1
    assert err == (
        "error: No space left on device\n"
        "       Free space on that disk (or move the output folder to one with room) and re-run the stage.\n"
    )


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOSPC, "Free space on that disk"),
        (errno.EDQUOT, "Your disk quota is used up"),
        (errno.EROFS, "Check the permissions of the output folder"),
        (errno.EACCES, "Check the permissions of the output folder"),
        (errno.EPERM, "Check the permissions of the output folder"),
        (errno.EIO, "Set MLRET_DEBUG=1"),  # anything else: still one line, with the path
    ],
)
def test_os_errors_name_the_path_and_the_fix(code: int, fix: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Root ignores folder permissions, so a read-only or over-quota folder cannot be made here.

    The error is raised as the OS raises it.
    """

    def stage() -> None:
        raise OSError(code, os.strerror(code), "data/eval/base/xquad-r/per_query.parquet")

    status, err = _run(stage, capsys)
    assert status == 1
    first, second, end = err.split("\n")
    assert first == f"error: data/eval/base/xquad-r/per_query.parquet: {os.strerror(code)}"
    assert second.startswith("       " + fix) and end == ""


def test_rename_errors_name_both_paths(capsys: pytest.CaptureFixture[str]) -> None:
    def stage() -> None:
        os.replace("/no/such/dir/a.json", "/no/such/dir/b.json")

    _, err = _run(stage, capsys)
    assert err.startswith("error: /no/such/dir/a.json -> /no/such/dir/b.json: No such file or directory\n")


def test_os_error_without_number_keeps_its_text(capsys: pytest.CaptureFixture[str]) -> None:
    def stage() -> None:
        raise OSError("index file is corrupt")

    _, err = _run(stage, capsys)
    assert err.startswith("error: index file is corrupt\n")


def test_other_exceptions_are_not_swallowed(capsys: pytest.CaptureFixture[str]) -> None:
    """A bug in our code must still show its traceback."""

    def stage() -> None:
        raise KeyError("lang")

    with pytest.raises(KeyError):
        cli_errors(stage)()
    assert capsys.readouterr().err == ""


# A stage in its own process whose writes are capped at 1000 bytes (`ulimit -f`), so
# that the artifact writers hit a real write error half-way through a file.
_CAPPED_STAGE = """
import resource, signal, sys
import pandas as pd
from mlret.artifacts import write_bytes, write_table
from mlret.errors import cli_errors

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

@cli_errors
def main(kind, target):
    if kind == "bytes":
        write_bytes(target, b"x" * 5000)
    else:
        write_table(target, pd.DataFrame({"a": range(5000)}))

main(*sys.argv[1:])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="file size limits are POSIX")
@pytest.mark.parametrize(("kind", "name"), [("bytes", "emb.npy"), ("table", "per_query.parquet")])
def test_failed_write_in_a_stage_names_the_artifact(kind: str, name: str, tmp_path: Path) -> None:
    target = tmp_path / "out" / name
    env = {key: value for key, value in os.environ.items() if key != "MLRET_DEBUG"}
    run = subprocess.run(
        [sys.executable, "-c", _CAPPED_STAGE, kind, str(target)], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 1, run.stderr
    # pyarrow says "Error writing bytes to file. Detail: [errno 27] File too large"; we print the system's words
    assert (
        run.stderr
        == f"error: {target}: File too large\n       Set MLRET_DEBUG=1 and re-run to see where it happened.\n"
    )
    assert list(target.parent.iterdir()) == []  # no half-written temporary file left behind

    debug = subprocess.run(
        [sys.executable, "-c", _CAPPED_STAGE, kind, str(target)],
        capture_output=True,
        text=True,
        env={**env, "MLRET_DEBUG": "1"},
        timeout=120,
    )
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "OSError: [Errno 27] " in debug.stderr and str(target) in debug.stderr


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    """`mlret --help | head -1`: the reader leaves early; no `error:` line about a broken pipe."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from mlret.errors import cli_errors\n"
        "@cli_errors\n"
        "def main():\n"
        "    for _ in range(100000):\n"
        "        print('line ' * 20)\n"
        "main()\n"
    )
    result = subprocess.run(
        f'{sys.executable} -c "{script}" | head -1', shell=True, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith("line")
    assert "error" not in result.stderr.lower() and "Traceback" not in result.stderr
