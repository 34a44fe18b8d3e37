"""`dvc repro split` on the LAReQA mirror, in a throw-away copy of the repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MIRROR = REPO.parent / "shared" / "data" / "lareqa"


@pytest.mark.slow
@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"LAReQA mirror not found at {MIRROR}")
def test_dvc_repro_split_on_the_mirror(tmp_path: Path, copy_repository) -> None:
    repo = copy_repository(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["mirror"] = "no/such/mirror"  # the environment variable must win over it
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    bin_dir = Path(sys.executable).parent
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DVC_NO_ANALYTICS": "1",
        "MLRET_DATA_MIRROR": str(MIRROR),
    }
    mirror_before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(MIRROR.rglob("*.json"))}
    run = subprocess.run([str(bin_dir / "dvc"), "repro", "split"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr

    data = json.loads((repo / "metrics" / "data.json").read_text())
    assert {lang: c["questions"] for lang, c in data["xquad-r"]["languages"].items()} == dict.fromkeys(
        ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"], 1190
    )
    assert data["mlqa-r"]["relevant_per_qid"] == {"min": 2, "max": 4}
    assert data["xquad-r"]["relevant_per_qid"] == {"min": 11, "max": 11}
    # The release is clean: nothing is dropped or merged, only the known flags move.
    for dataset in ("xquad-r", "mlqa-r"):
        assert data[dataset]["article_merges"] == 0
        for counts in data[dataset]["languages"].values():
            assert {k: v for k, v in counts.items() if k.startswith("dropped_")} == dict.fromkeys(
                [
                    "dropped_answer_not_in_sentence",
                    "dropped_answer_outside_sentences",
                    "dropped_article_conflict",
                    "dropped_no_answer",
                ],
                0,
            )
    assert data["xquad-r"]["languages"]["tr"]["sentence_text_mismatch"] == 2
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(MIRROR.rglob("*.json"))} == mirror_before
    candidates = pd.read_parquet(repo / "data" / "parallel" / "xquad-r" / "candidates.parquet")
    assert not candidates.text.str.contains("\ufeff").any()
    articles = json.loads((repo / "data" / "splits" / "articles.json").read_text())
    kept = {
        name: pd.read_parquet(repo / "data" / "splits" / name / "train.parquet").groupby("lang").qid.agg(set)
        for name in ("balanced", "ladder_a", "ladder_b", "ladder_c", "ladder_d")
    }
    assert set(pd.read_parquet(repo / "data" / "splits" / "ladder_a" / "train.parquet").article) <= set(
        articles["train"]
    )
    # ladder_a keeps no ar, 1% of hi, 5% of vi, 25% of zh and everything else; the subsets nest across profiles
    assert "ar" not in kept["ladder_a"] and kept["ladder_a"]["en"] == kept["balanced"]["en"]
    assert (
        0
        < len(kept["ladder_a"]["hi"])
        < len(kept["ladder_a"]["vi"])
        < len(kept["ladder_a"]["zh"])
        < len(kept["balanced"]["zh"])
    )
    assert kept["ladder_c"]["zh"] <= kept["ladder_d"]["zh"] <= kept["ladder_a"]["zh"] <= kept["balanced"]["zh"]

    again = subprocess.run([str(bin_dir / "dvc"), "repro", "split"], cwd=repo, env=env, capture_output=True, text=True)
    assert "didn't change, skipping" in again.stdout, again.stdout
