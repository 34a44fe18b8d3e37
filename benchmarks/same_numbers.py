"""Run the whole pipeline on a tiny fp32 configuration at two git revisions and compare the numbers.

A refactor must not move any number. On CPU in fp32 the pipeline is bitwise deterministic, so the
evaluation metrics, per-query scores and report of two revisions must be identical; timings, memory
and device fields of the metrics are ignored, and numbers one revision adds or no longer reports are
listed apart. The report's text files (reports/, plots/report/: tables, summary, cards, plot data)
must match line for line.

    .venv/bin/python benchmarks/same_numbers.py 6ca15c3 HEAD

Each revision is exported with `git archive` into a temporary folder, given the tiny configuration
built from its own tests/conftest.py (hand-made datasets in three scripts, a random BertModel with
hidden size 32) and run with `dvc repro`, its own src/ first on PYTHONPATH. Prints each compared file
and the first difference, and exits 1 when a number moved.

A revision whose params.yaml has ``bases:`` trains one base model keyed ``tiny``, whose artifacts
lie in per-base folders (metrics/eval/tiny/..., data/eval/tiny/..., reports/bases/tiny/...); a
revision with a single ``model:`` section has no base folder. Each file of the old revision is
compared with its counterpart at the new one, so two revisions on either side of that layout compare
too: the base folder is added or dropped, metrics/report.json's per-base entry is read as the whole
file, a report CSV's leading ``base`` column (and the base before a run's name) is left out, and
reports/summary.md is read as its base's section. The outputs a revision commits (the study's own
metrics/, reports/, ...) are removed before `dvc repro`, so that only what the tiny pipeline wrote is
compared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VOLATILE = ("seconds", "wall", "rss", "memory", "pairs_per_s", "device", "threads", "time", "_per_s")
#: The report's text outputs (tables, summary, cards, plot data), compared line by line.
REPORT_FOLDERS = ("reports", "plots/report")
REPORT_TEXT = {".csv", ".md", ".tex", ".json", ".tsv"}
#: The one base model of the tiny configuration, at revisions with a ``bases:`` section.
TINY_BASE = "tiny"
#: Folders whose artifacts lie in a per-base folder at those revisions.
PER_BASE = (("metrics", "eval"), ("metrics", "train"), ("data", "eval"))
#: What :func:`compare` reads: removed from the export before `dvc repro`, so that none of it is a committed output.
COMPARED = ("metrics", "data/eval", *REPORT_FOLDERS)


def export(rev: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", rev]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True, env=git_env(dest))
    return dest


def git_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home.parent),
        "DVC_NO_ANALYTICS": "1",
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "PYTHONPATH": str(home / "src"),
        "OMP_NUM_THREADS": "1",
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }


def configure(repo: Path, work: Path) -> str | None:
    """The tiny configuration, built by the revision's own fixtures so each side reads its own format; returns its
    base model's key, or None at a revision with a single ``model:`` section (no per-base folders)."""
    sys.path.insert(0, str(repo / "tests"))
    sys.path.insert(0, str(repo / "src"))
    try:
        import conftest  # type: ignore[import-not-found]

        # The fixture builders, public in older revisions and private (behind fixtures) in newer ones.
        write_dataset = getattr(conftest, "write_dataset", None) or conftest._write_dataset
        save_tiny_checkpoint = getattr(conftest, "save_tiny_checkpoint", None) or conftest._save_tiny_checkpoint

        mirror = work / "mirror"
        sources = {
            "tiny-xquad": write_dataset(mirror, "tiny-xquad", ["en", "ru", "zh", "ar"], n_articles=8),
            "tiny-mlqa": write_dataset(mirror, "tiny-mlqa", ["ar", "en", "zh"], n_articles=3),
        }
        model = save_tiny_checkpoint(work / "tiny-model")
    finally:
        for name in [m for m in sys.modules if m == "conftest" or m == "mlret" or m.startswith("mlret.")]:
            del sys.modules[name]
        del sys.path[:2]
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update(
        mirror=str(mirror),
        train_source="tiny-xquad",
        split={"train": 0.5, "dev": 0.0, "test": 0.5, "seed": 1},
        sources={
            n: {"url": s.url, "sha256": s.sha256, "expected_questions": s.expected_questions}
            for n, s in sources.items()
        },
    )
    params["profiles"] = {"balanced": {"default": 1.0}, "lowres": {"default": 1.0, "zh": 0.5, "ar": 0.25}}
    base = TINY_BASE if "bases" in params else None
    if "runs" in params:  # the grid the older revisions trained: every strategy at both profiles, seed 0
        params["runs"] = {
            "-".join([*([base] if base else []), s, p, "0"]): {
                **({"base": base} if base else {}),
                "strategy": s,
                "profile": p,
                "seed": 0,
                "corpora": "all",
            }
            for s in ("mono", "cross", "multi", "hybrid")
            for p in ("balanced", "lowres")
        }
        params["train"]["schedule"] = "random"
    model_settings = {
        "name": str(model),
        "query_prefix": "query : ",
        "passage_prefix": "passage : ",
        "max_query_length": 16,
        "max_passage_length": 16,
    }
    if base:  # the base model's settings, freeze_word_embeddings among them, under bases.{base}
        first = next(iter(params["bases"].values()))
        params["bases"] = {base: {**first, **model_settings, "freeze_word_embeddings": False}}
        if "primary_scope" in params.get("report", {}):  # keyed by base: the tiny base takes the default
            params["report"]["primary_scope"] = {}
    else:
        params["model"].update(model_settings)
        params["train"]["freeze_word_embeddings"] = False
    params["train"].update(
        batch_size=4,
        max_steps=6,
        save_every=3,
        max_query_length=16,
        max_passage_length=16,
        precision="fp32",
    )
    params["eval"]["batch_size"] = 8
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return base


@dataclass(frozen=True)
class Side:
    """One revision's pipeline: its repository and its base model's key (None without per-base folders)."""

    repo: Path
    base: str | None


def run_pipeline(rev: str, work: Path) -> Side:
    repo = export(rev, work / "repo")
    base = configure(repo, work)
    for folder in COMPARED:
        shutil.rmtree(repo / folder, ignore_errors=True)
    result = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo, env=git_env(repo), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dvc repro failed at {rev}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return Side(repo, base)


def counterpart(rel: Path, old: Side, new: Side) -> Path:
    """Where the new revision keeps what the old one keeps at ``rel``: the base folder added or dropped."""
    parts = list(rel.parts)
    if old.base == new.base:
        return rel
    if any(tuple(parts[:2]) == folder for folder in PER_BASE):
        rest = parts[3:] if old.base else parts[2:]
        return Path(*parts[:2], *([new.base] if new.base else []), *rest)
    if parts[0] == "reports" and old.base is None and new.base and (new.repo / "reports/bases" / new.base).is_dir():
        inside = Path("reports/bases", new.base, *parts[1:])
        return inside if (new.repo / inside).exists() else rel
    if parts[:2] == ["reports", "bases"] and old.base and new.base is None:
        return Path("reports", *parts[3:])
    if parts[:3] == ["plots", "report", "map"]:
        stem = parts[-1].removeprefix(f"{old.base}-") if old.base else parts[-1]
        return Path(*parts[:-1], f"{new.base}-{stem}" if new.base else stem)
    return rel


def report_numbers(path: Path, side: Side) -> dict[str, object]:
    """metrics/report.json's numbers, the side's base's entry read as the whole file (keyed ``{base: {section: ...}}``
    or ``{section: {base: ...}}``)."""
    record = json.loads(path.read_text())
    if side.base and isinstance(record, dict):
        if isinstance(record.get(side.base), dict):
            record = record[side.base]
        else:
            record = {
                section: value.get(side.base, value) if isinstance(value, dict) else value
                for section, value in record.items()
            }
    return numbers(record)


def base_section(lines: list[str], side: Side) -> list[str]:
    """reports/summary.md as a revision without per-base folders writes it: the base's section of the combined
    summary, its headings one level up, under the page's title."""
    if not side.base:
        return lines
    start = next((i for i, line in enumerate(lines) if line.startswith(f"## Base `{side.base}`")), None)
    if start is None:
        return lines
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## Base ")), len(lines))
    body = [line[1:] if line.startswith("##") else line for line in lines[start + 1 : end]]
    while body and not body[-1]:
        body.pop()
    return [lines[0], *body]


def without_base(lines: list[str], side: Side) -> list[str]:
    """A report CSV's lines without its leading ``base`` column, and without the base before a run's name."""
    if not side.base or not lines or not lines[0].startswith("base,"):
        return [line.replace(f"{side.base}/", "", 1) if side.base else line for line in lines]
    return [line.split(",", 1)[1] if "," in line else line for line in lines]


def numbers(value: object, prefix: str = "") -> dict[str, object]:
    """Flatten a metrics JSON, dropping measurements of the machine rather than of the model."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not any(word in str(key) for word in VOLATILE):
                out |= numbers(item, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): value}


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compare(old_side: Side, new_side: Side) -> int:
    old, new = old_side.repo, new_side.repo
    moved = 0
    for path in sorted((old / "metrics").rglob("*.json")):
        rel = path.relative_to(old)
        there = new / counterpart(rel, old_side, new_side)
        if not there.exists():
            print(f"{rel}: DIFFERENT (missing at the new revision, as {there.relative_to(new)})")
            moved += 1
            continue
        if rel == Path("metrics/report.json"):
            before, after = report_numbers(path, old_side), report_numbers(there, new_side)
        else:
            before, after = numbers(json.loads(path.read_text())), numbers(json.loads(there.read_text()))
        diff = [k for k in before if k in after and not same(before[k], after[k])]
        dropped = [k for k in before if k not in after]
        new_keys = len(set(after) - set(before))
        print(f"{rel}: {len(before)} numbers, {len(diff)} differ, {len(dropped)} no longer reported, {new_keys} new")
        for key in diff[:3]:
            print(f"    {key}: {before.get(key)} -> {after.get(key)}")
        if dropped:
            more = " ..." if len(dropped) > 3 else ""
            print(f"    no longer reported (not a change of any number): {dropped[:3]}{more}")
        moved += len(diff)
    for path in sorted((old / "data" / "eval").rglob("per_query.parquet")):
        rel = path.relative_to(old)
        a, b = pd.read_parquet(path), pd.read_parquet(new / counterpart(rel, old_side, new_side))
        equal = a.equals(b[a.columns]) if set(a.columns) <= set(b.columns) else False
        print(f"{rel}: {len(a)} rows, {'identical' if equal else 'DIFFERENT'}")
        moved += not equal
    for path in sorted(p for folder in REPORT_FOLDERS for p in (old / folder).rglob("*") if p.suffix in REPORT_TEXT):
        rel = path.relative_to(old)
        moved += not same_text(rel, (old_side, path), (new_side, new / counterpart(rel, old_side, new_side)))
    return moved


def same_text(rel: Path, old: tuple[Side, Path], new: tuple[Side, Path]) -> bool:
    """Whether a report file reads the same at both revisions (``(side, file)`` each); else print its first
    differing line. Each side's work folder (where the tiny model lies) reads as ``<work>``; where the two sides'
    layouts differ, a CSV is read without its base (:func:`without_base`)."""
    if not new[1].exists():
        print(f"{rel}: DIFFERENT (missing at the new revision)")
        return False
    before, after = (
        file.read_text(encoding="utf-8").replace(str(side.repo.parent), "<work>").splitlines()
        for side, file in (old, new)
    )
    if old[0].base != new[0].base and rel.suffix == ".csv":
        before, after = without_base(before, old[0]), without_base(after, new[0])
    if old[0].base != new[0].base and rel == Path("reports/summary.md"):
        before, after = base_section(before, old[0]), base_section(after, new[0])
    if before == after:
        print(f"{rel}: {len(before)} lines, identical")
        return True
    line = next((i for i, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
    print(f"{rel}: DIFFERENT from line {line + 1}")
    print(f"    - {before[line] if line < len(before) else '(end of file)'}")
    print(f"    + {after[line] if line < len(after) else '(end of file)'}")
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="git revision before the change")
    parser.add_argument("new", help="git revision after the change")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = run_pipeline(args.old, Path(tmp) / "old")
        new = run_pipeline(args.new, Path(tmp) / "new")
        moved = compare(old, new)
    print("no number moved" if moved == 0 else f"{moved} numbers or tables moved")
    raise SystemExit(1 if moved else 0)


if __name__ == "__main__":
    main()
