"""Disk a trained run takes, workspace and DVC cache together, at one or more git revisions.

Each revision is exported with `git archive` into a temporary git repository, its params.yaml cut
to two runs on the balanced profile (multi and hybrid, seed 0) of `--steps` training steps, and
`dvc repro` builds them with the real base model from the data mirror. A revision with a `bases:`
section is cut to the base `--base` (e5 by default, the base of a revision with a single `model:`
section) and keeps its models in models/{base}/. Then `du` counts the bytes
of `models/` and `.dvc/cache` together, counting a file hard-linked into both once, as the disk does:

    .venv/bin/python benchmarks/disk_per_run.py 6c586b1 HEAD

Prints, per revision: the base model's folder, `models/` and the cache before and after the two
runs, and the growth per run. Takes a few minutes per revision on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STRATEGIES = ("multi", "hybrid")


def cut_grid(params: dict[str, Any], base: str) -> tuple[dict[str, Any], Path]:
    """The two runs of the revision's params.yaml (keyed and placed as its layout has them) and the untuned model's
    folder under the workspace."""
    if "bases" not in params:  # a single `model:` section: runs keyed {strategy}-{profile}-{seed}, models/base
        return {
            f"{s}-balanced-0": {"strategy": s, "profile": "balanced", "seed": 0, "corpora": "in_domain"}
            for s in STRATEGIES
        }, Path("models/base")
    if base not in params["bases"]:
        raise SystemExit(f"--base {base!r}: the revision's params.yaml has bases {sorted(params['bases'])}")
    params["bases"] = {base: params["bases"][base]}
    if "primary_scope" in params.get("report", {}):  # keyed by base: only the base kept may have an entry
        params["report"]["primary_scope"] = {
            key: scope for key, scope in params["report"]["primary_scope"].items() if key == base
        }
    return {
        f"{base}-{s}-balanced-0": {
            "base": base,
            "strategy": s,
            "profile": "balanced",
            "seed": 0,
            "corpora": "in_domain",
        }
        for s in STRATEGIES
    }, Path("models", base, "base")


def disk_bytes(*paths: Path) -> int:
    """Bytes on disk under ``paths``, each hard-linked file once (one `du` over all of them)."""
    out = subprocess.run(["du", "-scb", *map(str, paths)], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def measure(rev: str, steps: int, base: str, root: Path) -> dict[str, int]:
    work = root / rev
    work.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(work, filter="data")
    params = yaml.safe_load((work / "params.yaml").read_text())
    runs, untuned = cut_grid(params, base)
    params["runs"] = runs
    params["train"]["max_steps"] = steps
    params["data"]["mirror"] = str((REPO / params["data"]["mirror"]).resolve())
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", rev]):
        subprocess.run(cmd, cwd=work, check=True, capture_output=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(work / "src")}
    dvc = [str(BIN / "dvc"), "repro"]
    models, cache = work / "models", work / ".dvc" / "cache"
    subprocess.run([*dvc, "base_model", "split"], cwd=work, check=True, env=env, capture_output=True)
    before = disk_bytes(models, cache)
    subprocess.run([*dvc, *(f"train@{key}" for key in runs)], cwd=work, check=True, env=env, capture_output=True)
    after = disk_bytes(models, cache)
    return {
        "base model folder": disk_bytes(work / untuned),
        "models/ + .dvc/cache before training": before,
        "models/ + .dvc/cache after training": after,
        "per trained run": (after - before) // len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--base", default="e5", help="the base model trained, at revisions with `bases:`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for rev in args.revisions:
            print(f"{rev}:")
            for name, value in measure(rev, args.steps, args.base, Path(tmp)).items():
                print(f"  {name:>38}: {value / 1e6:8.1f} MB")


if __name__ == "__main__":
    main()
