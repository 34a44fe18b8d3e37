"""Provenance of the committed results: which code, on which host, how long ``make repro`` took.

``make repro`` runs ``dvc repro`` through :func:`main`, which times it and then writes
``reports/provenance.md``: the commit (and whether the tree had uncommitted changes), the date,
the host's CPU model, its cores and the instruction sets that decide the training precision
(AVX2, AVX512-BF16, AMX), the torch build and any GPU, the stages DVC re-ran and the wall time. A
run that finds every stage up to date re-runs nothing and leaves the page as it was. A run that
re-runs some of the stages, not all, keeps the page of the run before it and lists itself beneath,
so the page always describes every run that made the results.

Usage: ``python -m mlret.provenance reports/provenance.md -- dvc repro``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mlret.artifacts import write_bytes
from mlret.errors import MlretError, cli_errors

#: CPU flags that decide how fast a CPU trains and in which precision (``train.precision: auto``).
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_description(cpuinfo: str) -> tuple[str, list[str]]:
    """The CPU model and which of :data:`FLAGS` it has, from the text of ``/proc/cpuinfo``."""
    model, flags = "unknown CPU", set[str]()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, [flag for flag in FLAGS if flag in flags]


def _git(*args: str) -> str:
    found = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else ""


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def provenance_markdown(
    *, commit: str, dirty: bool, started: datetime, seconds: float, stages: Sequence[str], command: Sequence[str]
) -> str:
    """The page: code, host, software, what ran and for how long."""
    cpuinfo = Path("/proc/cpuinfo")
    model, flags = cpu_description(cpuinfo.read_text(encoding="utf-8") if cpuinfo.is_file() else "")
    import torch  # the build the stages ran with

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        "# Provenance",
        "",
        f"Written by `make repro` when `{' '.join(command)}` re-ran stages; every file under reports/ and metrics/ "
        "comes from this run, or from a later run of some of its stages listed below.",
        "",
        "| | |",
        "|---|---|",
        f"| commit | `{commit or 'unknown'}`{' with uncommitted changes' if dirty else ''} |",
        f"| started (UTC) | {started.strftime('%Y-%m-%d %H:%M')} |",
        f"| wall time | {_duration(seconds)} ({seconds:.0f} s) |",
        f"| stages re-run | {len(stages)} |",
        f"| CPU | {model}, {os.cpu_count()} cores |",
        f"| CPU flags | {', '.join(flags) or 'none of ' + ', '.join(FLAGS)} |",
        f"| GPU | {gpu} |",
        f"| Python, torch | {platform.python_version()}, {torch.__version__} |",
    ]
    return "\n".join(lines) + "\n"


#: The heading under which later runs of some of the stages are listed.
LATER = "## Later runs of some stages"


def later_run_line(*, commit: str, dirty: bool, started: datetime, seconds: float, stages: Sequence[str]) -> str:
    """One line for a run that re-ran ``stages``, some of the pipeline's, on top of an earlier full run."""
    shown = ", ".join(f"`{stage}`" for stage in stages[:5]) + (
        f" and {len(stages) - 5} more" if len(stages) > 5 else ""
    )
    where = f"`{commit or 'unknown'}`{' with uncommitted changes' if dirty else ''}"
    return f"- {started.strftime('%Y-%m-%d %H:%M')} UTC, commit {where}: {shown} in {_duration(seconds)}"


def with_later_run(page: str, line: str) -> str:
    """``page`` with ``line`` added to its list of later runs (the list starts when the first one is added)."""
    body = page.rstrip("\n")
    return f"{body}\n{line}\n" if LATER in body else f"{body}\n\n{LATER}\n\n{line}\n"


def all_stages() -> list[str]:
    """Every stage of the pipeline, foreach items expanded."""
    found = subprocess.run(["dvc", "stage", "list", "--name-only"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise MlretError(f"`dvc stage list` failed: {found.stderr.strip()}", "Run it by hand to see why.")
    return sorted(found.stdout.split())


def stale_stages() -> list[str]:
    """The stages ``dvc status`` finds out of date (empty: nothing would re-run)."""
    found = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise MlretError(f"`dvc status` failed: {found.stderr.strip()}", "Run it by hand to see why.")
    return sorted(json.loads(found.stdout or "{}"))


@cli_errors
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlret.provenance", description=__doc__)
    parser.add_argument("out", type=Path, help="the page to write (reports/provenance.md)")
    parser.add_argument("command", nargs="+", help="the command that makes the results, after `--`")
    args = parser.parse_args(argv)
    stages = stale_stages()
    # The code that runs: read before the run, which modifies dvc.lock and the results.
    commit, dirty = _git("rev-parse", "--short", "HEAD"), bool(_git("status", "--porcelain", "--untracked-files=no"))
    started, clock = datetime.now(UTC), time.monotonic()
    status = subprocess.run(args.command, check=False).returncode
    seconds = time.monotonic() - clock
    if status != 0:
        sys.exit(status)
    if not stages:
        print(f"nothing re-ran: {args.out} still describes the run that made the results")
        return
    earlier = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
    if earlier.startswith("# Provenance") and set(stages) < set(all_stages()):
        line = later_run_line(commit=commit, dirty=dirty, started=started, seconds=seconds, stages=stages)
        page = with_later_run(earlier, line)
    else:
        page = provenance_markdown(
            commit=commit,
            dirty=dirty,
            started=started,
            seconds=seconds,
            stages=stages,
            command=args.command,
        )
    write_bytes(args.out, page.encode("utf-8"))
    print(f"{args.out}: {len(stages)} stage{'' if len(stages) == 1 else 's'} in {_duration(seconds)}")


if __name__ == "__main__":
    main()
