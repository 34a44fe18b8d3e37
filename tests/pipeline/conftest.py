"""Throw-away copies of the repository, for running the real `dvc` commands on them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _copy_repository(dest: Path) -> Path:
    listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    names = subprocess.run(listed, cwd=REPO, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


@pytest.fixture(scope="session")
def copy_repository() -> Callable[[Path], Path]:
    """Copies the working tree as git sees it (tracked and new files, not ignored ones) into a fresh git repository.

    Files deleted from the working tree but still tracked are left out, so the
    copy runs the code as it is on disk, not as last committed.
    """
    return _copy_repository
