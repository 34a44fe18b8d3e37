"""reports/provenance.md describes the run that made the results, and only such a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlret.provenance import cpu_description, main

BIN = Path(sys.executable).parent

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse avx2 avx512f avx512_bf16 sha_ni
processor\t: 1
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse avx2 avx512f avx512_bf16 sha_ni
"""


def test_the_cpu_is_named_with_the_flags_that_decide_its_precision() -> None:
    assert cpu_description(CPUINFO) == ("AMD EPYC 9B14", ["avx2", "avx512f", "avx512_bf16"])
    assert cpu_description("") == ("unknown CPU", [])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DVC project with one stage, in a git repository with one commit."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    for command in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(command, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hello > out.txt\n    outs: [out.txt]\n")
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "stage"], check=True)
    return tmp_path


def test_a_run_that_re_runs_stages_writes_the_page_and_one_that_does_not_leaves_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = project / "reports" / "provenance.md"
    main([str(page), "--", "dvc", "repro"])
    text = page.read_text(encoding="utf-8")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert (project / "out.txt").is_file()
    assert f"| commit | `{commit}` |" in text and "| stages re-run | 1 |" in text and "| wall time |" in text
    assert "| CPU flags |" in text

    page.write_text("the first run's page\n", encoding="utf-8")
    main([str(page), "--", "dvc", "repro"])
    assert page.read_text(encoding="utf-8") == "the first run's page\n"
    assert "nothing re-ran" in capsys.readouterr().out


def test_a_failing_command_writes_no_page_and_passes_its_status_on(project: Path) -> None:
    page = project / "reports" / "provenance.md"
    with pytest.raises(SystemExit) as stopped:
        main([str(page), "--", sys.executable, "-c", "raise SystemExit(3)"])
    assert stopped.value.code == 3 and not page.exists()


def test_a_run_of_some_stages_keeps_the_full_run_and_lists_itself_beneath(project: Path) -> None:
    (project / "dvc.yaml").write_text(
        "stages:\n"
        "  hello:\n    cmd: echo hello > out.txt\n    outs: [out.txt]\n"
        "  shout:\n    cmd: cat out.txt words.txt > loud.txt\n    deps: [out.txt, words.txt]\n    outs: [loud.txt]\n",
        encoding="utf-8",
    )
    (project / "words.txt").write_text("one\n", encoding="utf-8")
    page = project / "reports" / "provenance.md"
    main([str(page), "--", "dvc", "repro"])
    full = page.read_text(encoding="utf-8")
    assert "| stages re-run | 2 |" in full

    (project / "words.txt").write_text("two\n", encoding="utf-8")
    main([str(page), "--", "dvc", "repro"])
    text = page.read_text(encoding="utf-8")
    assert text.startswith(full.rstrip("\n")) and "| stages re-run | 2 |" in text
    assert "## Later runs of some stages" in text and text.rstrip("\n").splitlines()[-1].endswith(
        tuple(f": `shout` in {n} min" for n in range(2))
    )

    (project / "words.txt").write_text("three\n", encoding="utf-8")
    main([str(page), "--", "dvc", "repro"])
    assert page.read_text(encoding="utf-8").count("`shout` in") == 2

    (project / "words.txt").write_text("four\n", encoding="utf-8")
    (project / "out.txt").unlink()
    main([str(page), "--", "dvc", "repro"])  # every stage again: a new page
    assert "Later runs" not in page.read_text(encoding="utf-8")
