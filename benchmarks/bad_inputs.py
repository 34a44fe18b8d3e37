"""Feed every stage bad inputs, one at a time, and check that each is refused with one `error:` line.

The error contract (README, "Errors"): bad input ends a stage with a non-zero exit status and a
line starting with `error:` on stderr, never a traceback and never a silent success; no input
file is modified; a killed stage leaves no orphan process and no half-written output.

    .venv/bin/python benchmarks/bad_inputs.py                 # every case, about 7 minutes on 2 cores
    .venv/bin/python benchmarks/bad_inputs.py --only safetensors --keep /tmp/probe

A tiny configuration is built once in a temporary folder (the hand-made datasets and the random
BertModel of tests/conftest.py as the one base model ``tiny``, two training steps) and every stage
is run on it as dvc.yaml runs it. Each case then gets a fresh copy of that workspace, with the
outputs of the stage under test removed (as DVC removes them), applies one mutation (a params.yaml
value, a damaged table, weight file, index or checkpoint, a read-only folder, a file-size limit
standing in for a full disk) and runs the stage script as a subprocess. Outcomes:

* ``clear``: non-zero exit, a stderr line starting with ``error:``, no traceback (what we want);
* ``recovered``: a damaged checkpoint discarded with a warning and the run completed (by design);
* ``warned``: a record the stage drops by design (an answer outside every sentence), with a warning,
  counted in its metrics;
* ``traceback``: a Python traceback on stderr;
* ``silent``: exit status 0 on bad input;
* ``unclear``: non-zero exit without an ``error:`` line (a crash, a signal, argparse usage).

``modified`` lists input files whose bytes changed. Faults (SIGTERM, SIGKILL, SIGINT, the exit
of the launching process as when `dvc repro` is killed) are ``ok`` when the stage stops within a
few seconds, leaves no temporary or damaged output, and a re-run then succeeds. Prints one row per
case and a tally; exits 1 when any case is not ``clear``/``recovered``/``ok``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SRC = "tiny-xquad"  # the training source
ZS = "tiny-mlqa"  # a zero-shot dataset
BASE_KEY = "tiny"  # the one base model of the tiny grid, under params.yaml's `bases`
UNTUNED = f"{BASE_KEY}/base"  # its untuned model's folder under models/, data/eval/, metrics/eval/ ...
RUN = f"{BASE_KEY}/hybrid/balanced/0"  # the one run's folder there
RUN_KEY = f"{BASE_KEY}-hybrid-balanced-0"  # its key under `runs`

# Each stage's command line (as dvc.yaml gives it, on the one run of the tiny grid) and what it writes.
STAGES: dict[str, tuple[list[str], list[str]]] = {
    "download": (["stages/download.py", "data/raw"], ["data/raw"]),
    "parallelise": (
        ["stages/parallelise.py", "data/raw", "data/parallel", "metrics/data.json"],
        ["data/parallel", "metrics/data.json"],
    ),
    "split": (
        ["stages/split.py", "data/parallel", "data/splits", "metrics/splits.json"],
        ["data/splits", "metrics/splits.json"],
    ),
    "base_model": (["stages/base_model.py", BASE_KEY, f"models/{UNTUNED}"], [f"models/{UNTUNED}"]),
    "check_params": (["stages/check_params.py", "data/grid.json"], ["data/grid.json"]),
    "train": (
        [
            "stages/train.py",
            "--base",
            BASE_KEY,
            "--strategy",
            "hybrid",
            "--profile",
            "balanced",
            "--seed",
            "0",
            "--train-table",
            "data/splits/balanced/train.parquet",
            "--candidates",
            f"data/parallel/{SRC}/candidates.parquet",
            "--base-model",
            f"models/{UNTUNED}",
            "--out-dir",
            f"models/{RUN}",
            "--checkpoint-dir",
            f"checkpoints/{RUN}",
            "--metrics",
            f"metrics/train/{RUN}.json",
            "--loss-log",
            f"plots/train/{RUN}.csv",
        ],
        [f"models/{RUN}", f"checkpoints/{RUN}", f"metrics/train/{RUN}.json", f"plots/train/{RUN}.csv"],
    ),
    "encode_base": (
        [
            "stages/encode.py",
            "--base",
            BASE_KEY,
            f"models/{UNTUNED}",
            "data/parallel",
            "data/splits/articles.json",
            f"data/embeddings/{UNTUNED}",
        ],
        [f"data/embeddings/{UNTUNED}"],
    ),
    "encode": (
        [
            "stages/encode.py",
            "--base",
            BASE_KEY,
            f"models/{RUN}",
            "data/parallel",
            "data/splits/articles.json",
            f"data/embeddings/{RUN}",
            "--corpora",
            "all",
        ],
        [f"data/embeddings/{RUN}"],
    ),
    "index_base": (
        [
            "stages/index.py",
            "data/parallel",
            "data/splits/articles.json",
            f"data/embeddings/{UNTUNED}",
            f"data/index/{UNTUNED}",
        ],
        [f"data/index/{UNTUNED}"],
    ),
    "index": (
        [
            "stages/index.py",
            "data/parallel",
            "data/splits/articles.json",
            f"data/embeddings/{RUN}",
            f"data/index/{RUN}",
            "--corpora",
            "all",
        ],
        [f"data/index/{RUN}"],
    ),
    "evaluate_base": (
        [
            "stages/evaluate.py",
            "data/parallel",
            "data/splits/articles.json",
            f"data/embeddings/{UNTUNED}",
            f"data/eval/{UNTUNED}",
            f"metrics/eval/{UNTUNED}.json",
            "--model",
            UNTUNED,
        ],
        [f"data/eval/{UNTUNED}", f"metrics/eval/{UNTUNED}.json"],
    ),
    "evaluate": (
        [
            "stages/evaluate.py",
            "data/parallel",
            "data/splits/articles.json",
            f"data/embeddings/{RUN}",
            f"data/eval/{RUN}",
            f"metrics/eval/{RUN}.json",
            "--model",
            RUN,
            "--corpora",
            "all",
        ],
        [f"data/eval/{RUN}", f"metrics/eval/{RUN}.json"],
    ),
    "report": (
        [
            "stages/report.py",
            "data/eval",
            "metrics/eval",
            "metrics/train",
            "data/parallel",
            "plots/train",
            "reports",
            "metrics/report.json",
            "plots/report",
        ],
        ["reports", "metrics/report.json", "plots/report"],
    ),
    # Not a stage: the search command, on the trained model's pool of the zero-shot dataset.
    "search": (["-m", "mlret.search", "--model", f"models/{RUN}", "--dataset", ZS, "-k", "3", "where a1 p0 s1?"], []),
}
ORDER = [
    "download",
    "parallelise",
    "split",
    "base_model",
    "check_params",
    "train",
    "encode_base",
    "encode",
    "index_base",
    "index",
    "evaluate_base",
    "evaluate",
    "report",
]


def env(ws: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(PYTHON).parent}:/usr/bin:/bin",
        "HOME": str(ws),
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(REPO / "src"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def command(stage: str, args: list[str] | None = None) -> list[str]:
    argv, _ = STAGES[stage]
    argv = list(args if args is not None else argv)
    if argv[0].startswith("stages/"):
        argv[0] = str(REPO / argv[0])  # the checkout's stage scripts, run in the workspace (params.yaml and data there)
    return [PYTHON, *argv]


# ---------------------------------------------------------------------------------------------
# The tiny configuration


def build_workspace(ws: Path) -> None:
    """The tiny configuration of tests/pipeline/test_end_to_end.py, built by tests/conftest.py's helpers.

    Every stage is run once.
    """
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import conftest  # type: ignore[import-not-found]
    finally:
        del sys.path[0]
    mirror = ws / "mirror"
    sources = {
        SRC: conftest._write_dataset(mirror, SRC, ["en", "ru", "zh"], n_articles=6),
        ZS: conftest._write_dataset(mirror, ZS, ["ar", "en", "zh"], n_articles=3),
    }
    conftest._save_tiny_checkpoint(ws / "tiny-model")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"].update(
        mirror="mirror",
        train_source=SRC,
        download_retries=0,
        split={"train": 0.5, "dev": 0.0, "test": 0.5, "seed": 1},
        sources={
            n: {"url": s.url, "sha256": s.sha256, "expected_questions": s.expected_questions}
            for n, s in sources.items()
        },
    )
    params["profiles"] = {"balanced": {"default": 1.0}, "lowres": {"default": 1.0, "zh": 0.5}}
    params["runs"] = {
        RUN_KEY: {"base": BASE_KEY, "strategy": "hybrid", "profile": "balanced", "seed": 0, "corpora": "all"}
    }
    params["bases"] = {
        BASE_KEY: {
            **next(iter(params["bases"].values())),
            "name": "tiny-model",
            "query_prefix": "query : ",
            "passage_prefix": "passage : ",
            "max_query_length": 16,
            "max_passage_length": 16,
            "freeze_word_embeddings": False,
        }
    }
    if "primary_scope" in params.get("report", {}):  # keyed by base: the tiny base takes the default
        params["report"]["primary_scope"] = {}
    params["train"].update(
        batch_size=4,
        max_steps=3,
        save_every=2,
        max_query_length=16,
        max_passage_length=16,
        precision="fp32",
    )
    params["eval"]["batch_size"] = 8
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
    durations = {}
    for stage in ORDER:
        t0 = time.perf_counter()
        done = subprocess.run(command(stage), cwd=ws, env=env(ws), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the tiny configuration fails at {stage}:\n{done.stderr[-3000:]}")
        durations[stage] = time.perf_counter() - t0
        print(f"  built {stage} ({durations[stage]:.1f} s)", flush=True)
    # A resumable checkpoint of the run (step 2 of 3), kept for the damaged-checkpoint cases: the same run whose
    # final save is blocked (its out-dir under a file) stops after its last checkpoint, which then stays.
    (ws / "blocker").write_text("a file where a folder is expected")
    argv = [a if a != f"models/{RUN}" else "blocker/model" for a in STAGES["train"][0]]
    argv = [a if a != f"checkpoints/{RUN}" else "saved-checkpoint" for a in argv]
    subprocess.run(command("train", argv), cwd=ws, env=env(ws), capture_output=True, text=True)
    (ws / "blocker").unlink()
    if not (ws / "saved-checkpoint" / "trainer_state.json").is_file():
        raise SystemExit("could not keep a resumable checkpoint of the tiny run")
    (ws / "durations.json").write_text(
        json.dumps(durations)
    )  # when the faults stop each stage; written last: the build is complete


# ---------------------------------------------------------------------------------------------
# Mutations: each takes the case's workspace and damages one thing.


def params_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        params = yaml.safe_load((ws / "params.yaml").read_text(encoding="utf-8"))
        change(params)
        (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")

    return apply


def setting(path: str, value: Any) -> Callable[[Path], None]:
    """params.yaml ``a.b.c = value``."""

    def change(params: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value

    return params_edit(change)


def rename_key(path: str, new: str) -> Callable[[Path], None]:
    """Rename the last key of ``path`` (a profile, a source, a language) to ``new``, keeping its order and value."""

    def change(params: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = params
        for key in parents:
            node = node[key]
        items = [(new if k == last else k, v) for k, v in node.items()]
        node.clear()
        node.update(items)

    return params_edit(change)


def text_edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        text = (ws / rel).read_text(encoding="utf-8")
        if old not in text:
            raise AssertionError(f"{old!r} not in {rel}")
        (ws / rel).write_text(text.replace(old, new, 1), encoding="utf-8")

    return apply


def write(rel: str, payload: bytes | str) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(payload.encode("utf-8") if isinstance(payload, str) else payload)

    return apply


def truncate(rel: str, keep: float = 0.5) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        data = (ws / rel).read_bytes()
        (ws / rel).write_bytes(data[: int(len(data) * keep)])

    return apply


def flip_byte(rel: str, at: float = 0.5) -> Callable[[Path], None]:
    """Flip a byte from ``at`` on; in a Parquet file, the first one that changes what the file reads as (a flip in
    unused header bytes changes nothing a reader sees, so it would not be a bad input)."""

    def apply(ws: Path) -> None:
        data = bytearray((ws / rel).read_bytes())
        original = pq.read_table(pa.BufferReader(bytes(data))) if rel.endswith(".parquet") else None
        for i in range(int(len(data) * at), len(data)):
            data[i] ^= 0xFF
            if original is None or not _reads_as(bytes(data), original):
                break
            data[i] ^= 0xFF
        (ws / rel).write_bytes(bytes(data))

    return apply


def _reads_as(data: bytes, table: pa.Table) -> bool:
    try:
        return pq.read_table(pa.BufferReader(data)).equals(table)
    except Exception:
        return False


def remove(rel: str) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        target = ws / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return apply


def copy(src: str, dst: str) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        shutil.copyfile(ws / src, ws / dst)

    return apply


def table_edit(rel: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        frame = pd.read_parquet(ws / rel)
        pq.write_table(pa.Table.from_pandas(change(frame), preserve_index=False), ws / rel)

    return apply


def set_null(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[1], column] = None
        return frame

    return change


def as_text(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: frame[column].astype(str)})


def invalid_utf8(column: str) -> Callable[[Path], None]:
    """A text column whose second value is not UTF-8 (written as Arrow binary, read back as bytes)."""

    def apply_to(ws: Path, rel: str) -> None:
        frame = pd.read_parquet(ws / rel)
        values = [v.encode("utf-8") for v in frame[column]]
        values[1] = b"\xff\xfe broken"
        table = pa.Table.from_pandas(frame.drop(columns=[column]), preserve_index=False)
        table = table.append_column(column, pa.array(values, type=pa.binary()).cast(pa.string(), safe=False))
        pq.write_table(table, ws / rel)

    return apply_to  # type: ignore[return-value]


def on(rel: str, apply_to: Callable[[Path, str], None]) -> Callable[[Path], None]:
    return lambda ws: apply_to(ws, rel)


def npy_edit(rel: str, change: Callable[[np.ndarray], np.ndarray], **save: Any) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        array = np.load(ws / rel)
        np.save(ws / rel, change(array), **save)

    return apply


def json_edit(rel: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        payload = json.loads((ws / rel).read_text(encoding="utf-8"))
        (ws / rel).write_text(json.dumps(change(payload)), encoding="utf-8")

    return apply


def raw_edit(rel: str, change: Callable[[dict[str, Any]], None], rehash: str | None = None) -> Callable[[Path], None]:
    """Edit a LAReQA file (in data/raw or the mirror); ``rehash``: the source whose params checksum follows."""

    def apply(ws: Path) -> None:
        payload = json.loads((ws / rel).read_text(encoding="utf-8"))
        change(payload)
        (ws / rel).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        if rehash:
            lang = Path(rel).stem
            setting(f"data.sources.{rehash}.sha256.{lang}", hashlib.sha256((ws / rel).read_bytes()).hexdigest())(ws)

    return apply


def read_only(rel: str) -> Callable[[Path], None]:
    """``rel`` (created if missing) becomes read-only; the stage then runs without root's right to ignore modes."""

    def apply(ws: Path) -> None:
        (ws / rel).mkdir(parents=True, exist_ok=True)
        os.chmod(ws / rel, 0o555)

    return apply


def checkpoint(change: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """The kept step-2 checkpoint put where the run resumes from, then damaged by ``change``."""

    def apply(ws: Path) -> None:
        target = ws / "checkpoints" / RUN
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(ws / "saved-checkpoint", target)
        if change is not None:
            change(target)

    return apply


def state_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        change(state)
        (folder / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")

    return apply


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        for step in steps:
            step(ws)

    return apply


# ---------------------------------------------------------------------------------------------
# The cases


@dataclass
class Case:
    name: str
    stage: str
    mutate: Callable[[Path], None]
    args: list[str] | None = None  # another command line than the stage's (search options)
    # "recover": exit 0 with a warning (a damaged checkpoint is discarded);
    # "warn": exit 0 with a warning (a record dropped and counted)
    expect: str = "error"
    read_only: bool = False  # run without the capabilities that let root write into a read-only folder
    file_limit: int | None = None  # RLIMIT_FSIZE in bytes: writes past it fail (EFBIG), as on a full disk


def search_args(*extra: str, query: str | None = "where a1 p0 s1?") -> list[str]:
    base = ["-m", "mlret.search", "--model", f"models/{RUN}", "--dataset", ZS, "-k", "3"]
    return [*base, *extra, *([query] if query is not None else [])]


def dup_key(section_line: str, repeated: str) -> Callable[[Path], None]:
    return text_edit("params.yaml", section_line, section_line + repeated)


Q = f"data/parallel/{SRC}/questions.parquet"
C = f"data/parallel/{SRC}/candidates.parquet"
ZC = f"data/parallel/{ZS}/candidates.parquet"
T = "data/splits/balanced/train.parquet"
IDX = f"data/index/{RUN}/{ZS}"
PARENT = str(Path(RUN).parent)  # the run's profile folder, {base}/{strategy}/{profile}
EMB = f"data/embeddings/{RUN}/{ZS}"


def cases() -> list[Case]:
    P = "check_params"
    out = [
        # -- params.yaml: names that are paths, YAML that two readers read differently, values out of range
        Case("profile name ../../esc", "split", rename_key("profiles.lowres", "../../esc")),
        Case("profile name a/b", "split", rename_key("profiles.lowres", "a/b")),
        Case("profile name with a space", P, rename_key("profiles.lowres", "my profile")),
        Case("profile name empty", P, rename_key("profiles.lowres", "")),
        Case("source key ../x", P, rename_key(f"data.sources.{ZS}", "../x")),
        Case("language key ../x", P, rename_key(f"data.sources.{ZS}.sha256.ar", "../x")),
        Case("benchmark name ../b", P, setting("eval.beir", {"../b": "mirror"})),
        Case("run profile ../esc", P, setting(f"runs.{RUN_KEY}.profile", "../esc")),
        Case("base key ../esc", P, rename_key(f"bases.{BASE_KEY}", "../esc")),
        Case("run base ../esc", P, setting(f"runs.{RUN_KEY}.base", "../esc")),
        Case("duplicate key in train", "train", dup_key("  batch_size: 4\n", "  batch_size: 8\n")),
        Case("duplicate top-level key", P, dup_key("sampling: hybrid\n", "sampling: multi\n")),
        Case("duplicate key, read by search", "search", dup_key("  batch_size: 4\n", "  batch_size: 8\n")),
        Case("symmetric: no (YAML 1.1)", "train", text_edit("params.yaml", "symmetric: false", "symmetric: no")),
        Case("normalize: on (YAML 1.1)", P, text_edit("params.yaml", "normalize: true", "normalize: on")),
        Case(
            "freeze_word_embeddings: yes",
            "train",
            text_edit("params.yaml", "freeze_word_embeddings: false", "freeze_word_embeddings: yes"),
        ),
        Case("sampling_alpha 1000", "train", setting("train.sampling_alpha", 1000)),
        Case(
            "sampling_alpha 120, random schedule",
            "train",
            both(setting("train.sampling_alpha", 120), setting("train.schedule", "random")),
        ),
        Case("sampling_alpha -1", P, setting("train.sampling_alpha", -1)),
        Case("sampling_alpha .nan", P, text_edit("params.yaml", "sampling_alpha: 1.0", "sampling_alpha: .nan")),
        Case("learning_rate .inf", P, text_edit("params.yaml", "learning_rate: 3.0e-05", "learning_rate: .inf")),
        Case(
            "URL with {version}",
            "download",
            setting(f"data.sources.{ZS}.url", "https://example.invalid/{version}/{lang}.json"),
        ),
        Case(
            "URL with a stray {", "download", setting(f"data.sources.{ZS}.url", "https://example.invalid/{lang}.json{")
        ),
        Case("URL without {lang}", P, setting(f"data.sources.{ZS}.url", "https://example.invalid/x.json")),
        Case(f"unknown key bases.{BASE_KEY}.poolng", P, rename_key(f"bases.{BASE_KEY}.pooling", "poolng")),
        Case("batch_size 'abc'", P, setting("train.batch_size", "abc")),
        Case("batch_size 0", P, setting("train.batch_size", 0)),
        Case("temperature 0", P, setting("train.temperature", 0)),
        Case("learning_rate -1", P, setting("train.learning_rate", -1)),
        Case(
            "split fractions sum 1.5",
            "split",
            setting("data.split", {"train": 1.0, "dev": 0.0, "test": 0.5, "seed": 1}),
        ),
        Case("profile fraction 1.5", P, setting("profiles.lowres.zh", 1.5)),
        Case("profile language unknown", P, setting("profiles.lowres", {"default": 1.0, "xx": 0.5})),
        Case("sampling: foo", P, setting("sampling", "foo")),
        Case("sampling not trained", P, setting("sampling", "mono")),
        Case("run on unknown profile", P, setting(f"runs.{RUN_KEY}.profile", "nope")),
        Case("run on unknown base", P, setting(f"runs.{RUN_KEY}.base", "nope")),
        Case("run keyed wrongly", P, rename_key(f"runs.{RUN_KEY}", f"{BASE_KEY}-hybrid-balanced-1")),
        Case("run key without its base", P, rename_key(f"runs.{RUN_KEY}", "hybrid-balanced-0")),
        Case("bases empty", P, setting("bases", {})),
        Case(
            "a base without a run of the headline",
            P,
            params_edit(lambda p: p["bases"].update(other=dict(p["bases"][BASE_KEY]))),
        ),
        Case("train_source not a source", "split", setting("data.train_source", "nope")),
        Case("index.type foo", "index", setting("index.type", "foo")),
        Case("eval.beir folder missing", "encode", setting("eval.beir", {"bench": "no/such/folder"})),
        Case("precision fp8", P, setting("train.precision", "fp8")),
        Case("max_steps 0", P, setting("train.max_steps", 0)),
        Case(
            "max_steps and epochs both null", P, params_edit(lambda p: p["train"].update(max_steps=None, epochs=None))
        ),
        Case("warmup_ratio 1.5", P, setting("train.warmup_ratio", 1.5)),
        Case("weight_decay -0.1", P, setting("train.weight_decay", -0.1)),
        Case("max_grad_norm 0", P, setting("train.max_grad_norm", 0)),
        Case("grad_accumulation 0", P, setting("train.grad_accumulation", 0)),
        Case("hard_negatives -1", P, setting("train.hard_negatives", -1)),
        Case("save_every 0", P, setting("train.save_every", 0)),
        Case("temperature -0.05", P, setting("train.temperature", -0.05)),
        Case("train.max_query_length 0", P, setting("train.max_query_length", 0)),
        Case(f"bases.{BASE_KEY}.max_passage_length -1", P, setting(f"bases.{BASE_KEY}.max_passage_length", -1)),
        Case("eval.batch_size 0", P, setting("eval.batch_size", 0)),
        Case("eval.trec_runs [foo]", P, setting("eval.trec_runs", ["foo"])),
        Case("split seed -1", P, setting("data.split.seed", -1)),
        Case("download_retries -1", P, setting("data.download_retries", -1)),
        Case("run seed -1", P, setting(f"runs.{RUN_KEY}.seed", -1)),
        Case("run strategy foo", P, setting(f"runs.{RUN_KEY}.strategy", "foo")),
        Case("base: name empty", "base_model", setting(f"bases.{BASE_KEY}.name", "")),
        Case("params.yaml missing", P, remove("params.yaml")),
        Case("params.yaml empty", P, write("params.yaml", "")),
        Case("params.yaml a list", P, write("params.yaml", "- a\n- b\n")),
        Case("params.yaml bad syntax", P, write("params.yaml", "data: {mirror: [\n")),
        Case("params.yaml not UTF-8", P, write("params.yaml", b"sampling: \xff\xfe\n")),
        Case("params.yaml a folder", P, both(remove("params.yaml"), lambda ws: (ws / "params.yaml").mkdir())),
        Case(
            "train --profile not in params",
            "train",
            lambda ws: None,
            args=[a if a != "balanced" else "nope" for a in STAGES["train"][0]],
        ),
        Case(
            "train --base not in params",
            "train",
            lambda ws: None,
            args=[a if a != BASE_KEY else "nope" for a in STAGES["train"][0]],
        ),
        Case(
            "base_model base not in params",
            "base_model",
            lambda ws: None,
            args=[a if a != BASE_KEY else "nope" for a in STAGES["base_model"][0]],
        ),
        # -- download and the raw files
        Case("mirror file, one byte flipped", "download", flip_byte(f"mirror/{ZS}/en.json")),
        Case("mirror file truncated", "download", truncate(f"mirror/{ZS}/en.json")),
        Case("mirror file missing, offline", "download", remove(f"mirror/{ZS}/en.json")),
        Case("mirror folder missing, offline", "download", setting("data.mirror", "no-such-mirror")),
        Case(
            "raw file not JSON (checksum kept)",
            "parallelise",
            both(
                write(f"mirror/{ZS}/ar.json", "{oops"),
                raw_hash(ZS, "ar"),
                copy(f"mirror/{ZS}/ar.json", f"data/raw/{ZS}/ar.json"),
            ),
        ),
        Case("raw file truncated", "parallelise", truncate(f"data/raw/{ZS}/en.json")),
        Case("raw file missing", "parallelise", remove(f"data/raw/{ZS}/en.json")),
        Case(
            "raw JSON without data",
            "parallelise",
            raw_edit(f"data/raw/{ZS}/en.json", lambda p: p.pop("data"), rehash=ZS),
        ),
        Case(
            "raw JSON data not a list",
            "parallelise",
            raw_edit(f"data/raw/{ZS}/en.json", lambda p: p.update(data=5), rehash=ZS),
        ),
        Case(
            "raw JSON a question dropped",
            "parallelise",
            raw_edit(f"data/raw/{ZS}/en.json", lambda p: p["data"][0]["paragraphs"][0]["qas"].pop(), rehash=ZS),
        ),
        Case(
            "raw JSON answer_start past the end",
            "parallelise",
            raw_edit(
                f"data/raw/{ZS}/en.json",
                lambda p: p["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=10**6),
                rehash=ZS,
            ),
            expect="warn",
        ),
        Case(
            "raw JSON sentence_breaks wrong",
            "parallelise",
            raw_edit(
                f"data/raw/{ZS}/en.json",
                lambda p: p["data"][0]["paragraphs"][0].update(sentence_breaks=[[0, 3]]),
                rehash=ZS,
            ),
        ),
        Case(
            "raw JSON question id repeated",
            "parallelise",
            raw_edit(
                f"data/raw/{ZS}/en.json",
                lambda p: p["data"][0]["paragraphs"][0]["qas"][1].update(
                    id=p["data"][0]["paragraphs"][0]["qas"][0]["id"]
                ),
                rehash=ZS,
            ),
        ),
        Case(
            "raw JSON question text null",
            "parallelise",
            raw_edit(
                f"data/raw/{ZS}/en.json",
                lambda p: p["data"][0]["paragraphs"][0]["qas"][0].update(question=None),
                rehash=ZS,
            ),
        ),
        # -- the parallel tables
        Case("questions.parquet one byte flipped", "split", flip_byte(Q, 0.3)),
        Case("questions.parquet text byte flipped", "split", flip_text_byte(Q)),
        Case("questions.parquet truncated", "split", truncate(Q)),
        Case("questions.parquet empty file", "split", write(Q, b"")),
        Case("questions.parquet zero rows", "split", table_edit(Q, lambda f: f.iloc[:0])),
        Case("questions.parquet article as text", "split", table_edit(Q, as_text("article"))),
        Case("questions.parquet null text", "split", table_edit(Q, set_null("text"))),
        Case("questions.parquet column missing", "split", table_edit(Q, lambda f: f.drop(columns=["article"]))),
        Case("questions.parquet rows duplicated", "split", table_edit(Q, lambda f: pd.concat([f, f.iloc[:3]]))),
        Case("questions.parquet invalid UTF-8", "split", on(Q, invalid_utf8("text"))),
        Case("candidates.parquet rows duplicated", "train", table_edit(C, lambda f: pd.concat([f, f.iloc[:2]]))),
        Case("candidates.parquet null text (encode)", "encode_base", table_edit(C, set_null("text"))),
        Case("candidates.parquet invalid UTF-8", "encode_base", on(ZC, invalid_utf8("text"))),
        Case("candidates.parquet zero rows (index)", "index", table_edit(ZC, lambda f: f.iloc[:0])),
        Case(
            "candidates.parquet rows duplicated (evaluate)",
            "evaluate",
            table_edit(ZC, lambda f: pd.concat([f, f.iloc[:2]])),
        ),
        Case("train.parquet null text", "train", table_edit(T, set_null("query"))),
        Case("train.parquet zero rows", "train", table_edit(T, lambda f: f.iloc[:0])),
        Case("train.parquet column missing", "train", table_edit(T, lambda f: f.drop(columns=["positive"]))),
        Case("train.parquet query as numbers", "train", table_edit(T, lambda f: f.assign(query=range(len(f))))),
        Case("train.parquet not Parquet", "train", write(T, "id,text\n1,a\n")),
        Case("train.parquet missing", "train", remove(T)),
        Case("articles.json not JSON", "encode_base", write("data/splits/articles.json", "{")),
        Case("articles.json a list", "encode_base", write("data/splits/articles.json", "[1, 2]")),
        Case("articles.json missing", "evaluate", remove("data/splits/articles.json")),
        Case(
            "candidates.parquet column missing (encode)",
            "encode_base",
            table_edit(ZC, lambda f: f.drop(columns=["text"])),
        ),
        Case("candidates.parquet missing (evaluate)", "evaluate", remove(ZC)),
        # -- model weights and files
        Case("base: model.safetensors truncated", "base_model", truncate("tiny-model/model.safetensors")),
        Case("base: model.safetensors empty", "base_model", write("tiny-model/model.safetensors", b"")),
        Case("base: config.json not JSON", "base_model", write("tiny-model/config.json", "{")),
        Case("base: name a missing folder", "base_model", setting(f"bases.{BASE_KEY}.name", "no-such-model")),
        Case("base: name a file", "base_model", setting(f"bases.{BASE_KEY}.name", "params.yaml")),
        Case(
            "train: base model shard truncated",
            "train",
            truncate(f"models/{UNTUNED}/model-00002-of-00002.safetensors"),
        ),
        Case("train: base model.safetensors empty", "train", write(f"models/{UNTUNED}/model.safetensors", b"")),
        Case("train: base tokenizer.json damaged", "train", truncate(f"models/{UNTUNED}/tokenizer.json")),
        Case("train: base model missing", "train", remove(f"models/{UNTUNED}")),
        Case("train: base config.json not JSON", "train", write(f"models/{UNTUNED}/config.json", "{")),
        Case("encode: model shard truncated", "encode", truncate(f"models/{RUN}/model-00002-of-00002.safetensors")),
        Case(
            "encode: model shard one byte flipped in header",
            "encode",
            flip_byte(f"models/{RUN}/model-00002-of-00002.safetensors", 0.0001),
        ),
        Case("encode: config.json not JSON", "encode", write(f"models/{RUN}/config.json", "{")),
        Case("encode: shard index not JSON", "encode", write(f"models/{RUN}/model.safetensors.index.json", "{")),
        Case("search: modules.json damaged", "search", write(f"models/{RUN}/modules.json", "[")),
        Case("search: model shard truncated", "search", truncate(f"models/{RUN}/model-00002-of-00002.safetensors")),
        Case("search: model.safetensors empty", "search", write(f"models/{RUN}/model.safetensors", b"")),
        # -- embeddings
        Case("embeddings .npy truncated (evaluate)", "evaluate", truncate(f"{EMB}/candidates.npy")),
        Case(
            "embeddings .npy rows missing (evaluate)", "evaluate", npy_edit(f"{EMB}/candidates.npy", lambda a: a[:-1])
        ),
        Case("embeddings .npy NaN (evaluate)", "evaluate", npy_edit(f"{EMB}/candidates.npy", lambda a: a * np.nan)),
        Case(
            "embeddings .npy pickled objects",
            "evaluate",
            npy_edit(f"{EMB}/candidates.npy", lambda a: a.astype(object), allow_pickle=True),
        ),
        Case("embeddings .npy truncated (index)", "index", truncate(f"{EMB}/candidates.npy")),
        Case("embeddings ids table damaged", "evaluate", flip_byte(f"{EMB}/candidates.ids.parquet", 0.3)),
        Case("embeddings folder missing", "evaluate", remove(f"data/embeddings/{RUN}")),
        # -- indexes and search
        Case("search: en.faiss over all.faiss", "search", copy(f"{IDX}/en.faiss", f"{IDX}/all.faiss")),
        Case(
            "search: ar.faiss over en.faiss, --lang en",
            "search",
            copy(f"{IDX}/ar.faiss", f"{IDX}/en.faiss"),
            args=search_args("--lang", "en"),
        ),
        Case("search: all.faiss truncated", "search", truncate(f"{IDX}/all.faiss")),
        Case("search: all.faiss empty", "search", write(f"{IDX}/all.faiss", b"")),
        Case("search: manifest missing", "search", remove(f"{IDX}/all.manifest.json")),
        Case("search: manifest not JSON", "search", write(f"{IDX}/all.manifest.json", "{")),
        Case("search: manifest a list", "search", write(f"{IDX}/all.manifest.json", "[]")),
        Case(
            "search: manifest rows wrong", "search", json_edit(f"{IDX}/all.manifest.json", lambda m: {**m, "rows": 1})
        ),
        Case(
            "search: manifest rows a string",
            "search",
            json_edit(f"{IDX}/all.manifest.json", lambda m: {**m, "rows": "x"}),
        ),
        Case("search: candidates table damaged", "search", flip_byte(f"{IDX}/all.candidates.parquet", 0.3)),
        Case("search: empty query", "search", lambda ws: None, args=search_args(query="")),
        Case("search: blank query", "search", lambda ws: None, args=search_args(query="   \t ")),
        Case("search: -k 0", "search", lambda ws: None, args=search_args("-k", "0")),
        Case(
            "search: queries file empty",
            "search",
            write("q.txt", "\n\n"),
            args=search_args("--queries", "q.txt", query=None),
        ),
        Case(
            "search: queries file not UTF-8",
            "search",
            write("q.txt", b"\xff\xfe\n"),
            args=search_args("--queries", "q.txt", query=None),
        ),
        Case(
            "search: queries TSV line without tab",
            "search",
            write("q.txt", "1\ta\nb\n"),
            args=search_args("--queries", "q.txt", query=None),
        ),
        Case(
            "search: queries file missing",
            "search",
            lambda ws: None,
            args=search_args("--queries", "nope.txt", query=None),
        ),
        Case(
            "search: unknown dataset", "search", lambda ws: None, args=[a if a != ZS else "nope" for a in search_args()]
        ),
        Case("search: unknown language", "search", lambda ws: None, args=search_args("--lang", "xx")),
        Case(
            "search: model outside models/",
            "search",
            lambda ws: None,
            args=[a if a != f"models/{RUN}" else "tiny-model" for a in search_args()],
        ),
        Case("search: params.yaml damaged", "search", write("params.yaml", "{")),
        # -- training that diverges, damaged checkpoints
        Case("train: temperature 1e-300", "train", setting("train.temperature", 1e-300)),
        # On the tiny model 1e4 needs more than three steps to overflow (three end at a finite, collapsed loss of ln 4).
        Case(
            "train: learning_rate 1e4",
            "train",
            params_edit(lambda p: p["train"].update(learning_rate=1e4, warmup_ratio=0.0, max_steps=50, save_every=5)),
        ),
        Case("train: learning_rate 1e30, fp32", "train", setting("train.learning_rate", 1e30)),
        Case(
            "checkpoint: state JSON not JSON",
            "train",
            checkpoint(write_in("trainer_state.json", "{")),
            expect="recover",
        ),
        Case("checkpoint: state JSON empty", "train", checkpoint(write_in("trainer_state.json", "")), expect="recover"),
        Case(
            "checkpoint: log damaged, identity kept",
            "train",
            checkpoint(state_edit(lambda s: s.update(log=[{"step": "x"}]))),
            expect="recover",
        ),
        Case(
            "checkpoint: log not a list", "train", checkpoint(state_edit(lambda s: s.update(log=5))), expect="recover"
        ),
        Case(
            "checkpoint: step beyond the run",
            "train",
            checkpoint(state_edit(lambda s: s.update(step=10**6))),
            expect="recover",
        ),
        Case(
            "checkpoint: sampler state damaged",
            "train",
            checkpoint(state_edit(lambda s: s.update(sampler={"x": 1}))),
            expect="recover",
        ),
        Case(
            "checkpoint: tensors truncated",
            "train",
            checkpoint(truncate_in("trainer_state.safetensors")),
            expect="recover",
        ),
        Case(
            "checkpoint: tensors missing",
            "train",
            checkpoint(lambda f: (f / "trainer_state.safetensors").unlink()),
            expect="recover",
        ),
        Case(
            "checkpoint: a file, not a folder",
            "train",
            lambda ws: write_file_at(ws / "checkpoints" / RUN),
            expect="recover",
        ),
        # -- evaluation results read by the report
        Case("report: eval metrics not JSON", "report", write(f"metrics/eval/{UNTUNED}.json", "{")),
        Case("report: eval metrics a list", "report", write(f"metrics/eval/{UNTUNED}.json", "[]")),
        Case("report: train metrics missing", "report", remove(f"metrics/train/{RUN}.json")),
        Case("report: loss log damaged", "report", write(f"plots/train/{RUN}.csv", "step,loss\nx,y\n")),
        Case("report: per-query table damaged", "report", flip_byte(f"data/eval/{RUN}/{SRC}/per_query.parquet", 0.3)),
        Case("report: per-query table missing", "report", remove(f"data/eval/{RUN}/{SRC}/per_query.parquet")),
        Case("report: a run never evaluated", "report", remove(f"data/eval/{RUN}")),
        # -- the operating system: read-only output folders, a file-size limit in place of a full disk
        Case("read-only: split output folder", "split", read_only("data/splits"), read_only=True),
        Case("read-only: train output folder", "train", read_only(f"models/{PARENT}"), read_only=True),
        Case("read-only: checkpoint folder", "train", read_only(f"checkpoints/{PARENT}"), read_only=True),
        Case("read-only: encode output folder", "encode", read_only(f"data/embeddings/{PARENT}"), read_only=True),
        Case("read-only: index output folder", "index", read_only(f"data/index/{PARENT}"), read_only=True),
        Case("read-only: evaluate metrics folder", "evaluate", read_only(f"metrics/eval/{PARENT}"), read_only=True),
        Case("read-only: report folder", "report", read_only("reports"), read_only=True),
        Case("read-only: base_model folder", "base_model", read_only(f"models/{BASE_KEY}"), read_only=True),
        Case(
            "output path under a file (train)",
            "train",
            both(remove(f"models/{BASE_KEY}/hybrid"), write(f"models/{BASE_KEY}/hybrid", "a file")),
        ),
        Case(
            "output path under a file (evaluate)",
            "evaluate",
            both(remove(f"data/eval/{BASE_KEY}/hybrid"), write(f"data/eval/{BASE_KEY}/hybrid", "a file")),
        ),
        Case("file-size limit: base_model", "base_model", lambda ws: None, file_limit=20_000),
        Case("file-size limit: train", "train", lambda ws: None, file_limit=20_000),
        Case("file-size limit: encode", "encode", lambda ws: None, file_limit=2_000),
        Case("file-size limit: index", "index", lambda ws: None, file_limit=2_000),
        Case("file-size limit: evaluate", "evaluate", lambda ws: None, file_limit=1_000),
        Case("file-size limit: report", "report", lambda ws: None, file_limit=1_000),
        Case("file-size limit: split", "split", lambda ws: None, file_limit=1_000),
        Case("file-size limit: parallelise", "parallelise", lambda ws: None, file_limit=1_000),
    ]
    return out


def raw_hash(source: str, lang: str) -> Callable[[Path], None]:
    """Record the mirror file's current checksum in params.yaml, so download accepts it and parallelise meets it."""
    return lambda ws: setting(
        f"data.sources.{source}.sha256.{lang}",
        hashlib.sha256((ws / "mirror" / source / f"{lang}.json").read_bytes()).hexdigest(),
    )(ws)


def flip_text_byte(rel: str) -> Callable[[Path], None]:
    """Flip one byte inside a question's text.

    The column is uncompressed, with no statistics and no page checksum: the byte is in the file once, as written.
    """

    def apply(ws: Path) -> None:
        frame = pd.read_parquet(ws / rel)
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False),
            ws / rel,
            compression="none",
            use_dictionary=False,
            write_statistics=False,
        )
        data = bytearray((ws / rel).read_bytes())
        needle = str(frame.text.iloc[0]).encode("utf-8")
        at = data.find(needle)
        data[at + len(needle) - 2] ^= 0xC0  # "?" -> an invalid UTF-8 byte
        (ws / rel).write_bytes(bytes(data))

    return apply


def write_in(name: str, payload: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(payload, encoding="utf-8")


def truncate_in(name: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return apply


def write_file_at(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a checkpoint")


# ---------------------------------------------------------------------------------------------
# Running and judging


@dataclass
class Result:
    case: str
    stage: str
    outcome: str
    line: str
    modified: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fingerprint(ws: Path, skip: list[str]) -> dict[str, str]:
    skipped = [ws / s for s in skip]
    out = {}
    for path in sorted(ws.rglob("*")):
        if path.is_file() and not path.is_symlink() and not any(path == s or s in path.parents for s in skipped):
            out[str(path.relative_to(ws))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def fresh_copy(golden: Path, root: Path, name: str, stage: str) -> Path:
    ws = Path(tempfile.mkdtemp(prefix="case-", dir=root))
    shutil.copytree(golden, ws, dirs_exist_ok=True, symlinks=True)
    for out in STAGES[stage][1]:
        target = ws / out
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    return ws


def judge(rc: int, stderr: str, expect: str) -> tuple[str, str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    first_error = next((line for line in lines if line.startswith("error:")), "")
    if "Traceback (most recent call last)" in stderr:
        last = next((line for line in reversed(lines) if line and not line.startswith(" ")), "")
        return "traceback", last
    if expect in ("recover", "warn"):
        warned = next((line for line in lines if "discarding" in line or "warning" in line.lower()), "")
        if rc == 0:
            return (
                ("recovered" if expect == "recover" else "warned") if warned else "silent"
            ), warned or "exit 0, no warning"
        return ("clear" if first_error else "unclear"), first_error or (lines[-1] if lines else f"exit {rc}")
    if rc == 0:
        return "silent", "exit 0"
    if first_error:
        return "clear", first_error
    return "unclear", lines[-1] if lines else f"exit {rc}"


def preexec(case: Case) -> Callable[[], None] | None:
    if case.file_limit is None:
        return None
    limit = case.file_limit
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


# Modes bind root too once these capabilities are gone (util-linux's setpriv; a no-op prefix for other users).
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else []


def run_case(case: Case, golden: Path, root: Path, keep: bool) -> Result:
    ws = fresh_copy(golden, root, case.name, case.stage)
    try:
        try:
            case.mutate(ws)
        except Exception as err:
            return Result(case.name, case.stage, "probe-bug", f"the mutation failed: {type(err).__name__}: {err}")
        writes = STAGES[case.stage][1]
        before = fingerprint(ws, writes)
        t0 = time.perf_counter()
        try:
            argv = [*NO_OVERRIDE, *command(case.stage, case.args)] if case.read_only else command(case.stage, case.args)
            done = subprocess.run(
                argv, cwd=ws, env=env(ws), capture_output=True, text=True, timeout=300, preexec_fn=preexec(case)
            )
            rc, stderr = done.returncode, done.stderr
        except subprocess.TimeoutExpired as err:
            rc, stderr = -1, f"timed out after 300 s\n{err.stderr or ''}"
        seconds = time.perf_counter() - t0
        outcome, line = judge(rc, stderr, case.expect)
        after = fingerprint(ws, writes)
        modified = sorted(k for k in before if after.get(k) != before[k])
        return Result(case.name, case.stage, outcome, line, modified, seconds)
    finally:
        if not keep:
            shutil.rmtree(ws, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Faults: stop a stage mid-run


@dataclass
class Fault:
    name: str
    stage: str
    # "SIGTERM", "SIGKILL", "SIGINT" to the stage;
    # "launcher": SIGKILL to the process that started it (a killed `dvc repro`)
    how: str
    after: str  # a file whose appearance means the stage is mid-run ("" = a share of the stage's time in the build)
    share: float = 0.6
    longer: dict[str, Any] = field(default_factory=dict)  # params for a longer run


LONG_TRAIN = {"train.max_steps": 40, "train.save_every": 5}
LONG_EVAL = {"eval.batch_size": 1}


def faults() -> list[Fault]:
    ckpt = f"checkpoints/{RUN}/trainer_state.json"
    return [
        Fault("SIGTERM during training", "train", "SIGTERM", ckpt, longer=LONG_TRAIN),
        Fault("SIGINT during training", "train", "SIGINT", ckpt, longer=LONG_TRAIN),
        Fault("SIGKILL during training", "train", "SIGKILL", ckpt, longer=LONG_TRAIN),
        Fault("launcher killed during training", "train", "launcher", ckpt, longer=LONG_TRAIN),
        Fault("SIGTERM during encode", "encode", "SIGTERM", "", longer=LONG_EVAL),
        Fault("SIGKILL during encode", "encode", "SIGKILL", "", share=0.8, longer=LONG_EVAL),
        Fault("launcher killed during encode", "encode", "launcher", "", share=0.7, longer=LONG_EVAL),
        Fault("launcher killed during encode_base", "encode_base", "launcher", "", share=0.4, longer=LONG_EVAL),
        Fault("launcher killed during evaluate", "evaluate", "launcher", "", share=0.7),
        Fault("SIGKILL during evaluate", "evaluate", "SIGKILL", "", share=0.8),
        Fault("SIGKILL during index", "index", "SIGKILL", "", share=0.8),
        Fault("SIGKILL during base_model", "base_model", "SIGKILL", ""),
        Fault("SIGKILL during report", "report", "SIGKILL", "", share=0.8),
        Fault("SIGKILL during split", "split", "SIGKILL", "", share=0.8),
        Fault("SIGTERM during evaluate", "evaluate", "SIGTERM", "", share=0.6),
        Fault("SIGINT during evaluate", "evaluate", "SIGINT", "", share=0.6),
        Fault("SIGTERM during index", "index", "SIGTERM", "", share=0.6),
        Fault("SIGTERM during report", "report", "SIGTERM", "", share=0.6),
        Fault("SIGKILL during parallelise", "parallelise", "SIGKILL", "", share=0.6),
    ]


LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:], env={**os.environ, "DVC_STAGE": "probe"})
open(sys.argv[1], "w").write(str(child.pid))
child.wait()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def leftovers(ws: Path, outs: list[str]) -> list[str]:
    """Temporary files (ours are hidden: ``.name.xxxx``, ``.name.tmp-xxx``) and outputs that do not parse."""
    bad = []
    for out in outs:
        root = ws / out
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        paths += sorted(root.parent.glob(f".{root.name}*")) if root.parent.is_dir() else []
        for path in paths:
            if not path.is_file():
                continue
            rel = str(path.relative_to(ws))
            if path.name.startswith("."):
                bad.append(f"temporary {rel}")
                continue
            try:
                if path.suffix == ".json":
                    json.loads(path.read_text(encoding="utf-8"))
                elif path.suffix == ".parquet":
                    pq.read_table(path)
                elif path.suffix == ".npy":
                    np.load(path)
            except Exception as err:
                bad.append(f"damaged {rel} ({type(err).__name__})")
    return bad


def run_fault(fault: Fault, golden: Path, root: Path, keep: bool) -> Result:
    ws = fresh_copy(golden, root, fault.name, fault.stage)
    try:
        for key, value in fault.longer.items():
            setting(key, value)(ws)
        outs = STAGES[fault.stage][1]
        pid_file = ws / "stage.pid"
        if fault.how == "launcher":
            proc = subprocess.Popen(
                [PYTHON, "-c", LAUNCHER, str(pid_file), *command(fault.stage)],
                cwd=ws,
                env=env(ws),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        else:
            proc = subprocess.Popen(
                command(fault.stage), cwd=ws, env=env(ws), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            pid_file.write_text(str(proc.pid))
        delay = fault.share * json.loads((golden / "durations.json").read_text())[fault.stage]
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 120 and proc.poll() is None:
            if (fault.after and (ws / fault.after).exists()) or (not fault.after and time.perf_counter() - t0 >= delay):
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            return Result(
                fault.name,
                fault.stage,
                "missed",
                f"the stage ended (exit {proc.returncode}) before it could be stopped",
                seconds=time.perf_counter() - t0,
            )
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.05)
        child = int(pid_file.read_text())
        os.kill(proc.pid, signal.SIGKILL if fault.how == "launcher" else getattr(signal, fault.how))
        killed = time.perf_counter()
        while alive(child) and time.perf_counter() - killed < 15:
            time.sleep(0.05)
        stopped_in = time.perf_counter() - killed
        if fault.how == "launcher":
            proc.wait()
        else:
            proc.wait(timeout=15)
        stderr = proc.stderr.read() if proc.stderr else ""
        if alive(child):
            os.kill(child, signal.SIGKILL)
            return Result(
                fault.name,
                fault.stage,
                "orphan",
                f"still running {stopped_in:.0f} s after the kill",
                seconds=time.perf_counter() - t0,
            )
        problems = leftovers(ws, outs)
        # As DVC does before re-running: remove the declared outputs (the checkpoint folder is not one), then run again.
        for out in outs:
            if out.startswith("checkpoints/"):
                continue
            target = ws / out
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        again = subprocess.run(command(fault.stage), cwd=ws, env=env(ws), capture_output=True, text=True)
        first = next((line for line in stderr.splitlines() if line.startswith("error:")), "")
        if "Traceback (most recent call last)" in stderr and fault.how != "SIGINT":
            outcome, line = "traceback", stderr.strip().splitlines()[-1]
        elif problems:
            outcome, line = "partial", "; ".join(problems[:3])
        elif again.returncode != 0:
            outcome, line = (
                "no-rerun",
                next((x for x in again.stderr.splitlines() if x.startswith("error:")), again.stderr.strip()[-200:]),
            )
        else:
            outcome, line = (
                "ok",
                f"killed at {killed - t0:.1f} s, stopped {stopped_in:.1f} s later; re-run ok"
                + (
                    f"; {first}"
                    if first
                    else f"; {stderr.strip().splitlines()[-1][-150:] if stderr.strip() else 'no message'}"
                ),
            )
        return Result(fault.name, fault.stage, outcome, line, seconds=time.perf_counter() - t0)
    finally:
        if not keep:
            shutil.rmtree(ws, ignore_errors=True)


# ---------------------------------------------------------------------------------------------


GOOD = {"clear", "recovered", "warned", "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only the cases whose name or stage contains this text")
    parser.add_argument("--no-faults", action="store_true", help="skip the kill tests")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep every case's workspace")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="mlret-bad-inputs-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        golden = root / "golden"
        if not (golden / "durations.json").is_file():
            print(f"building the tiny configuration in {golden}", flush=True)
            shutil.rmtree(golden, ignore_errors=True)
            golden.mkdir()
            build_workspace(golden)
        selected = [c for c in cases() if args.only.lower() in f"{c.name} {c.stage}".lower()]
        chosen_faults = (
            [] if args.no_faults else [f for f in faults() if args.only.lower() in f"{f.name} {f.stage}".lower()]
        )
        results: list[Result] = []
        width = max([len(c.name) for c in selected] + [len(f.name) for f in chosen_faults] + [4])
        print(f"\n{'case':<{width}}  {'stage':<13} {'outcome':<10} {'s':>5}  first error line")
        for item in [*selected, *chosen_faults]:
            result = (
                run_case(item, golden, root, args.keep is not None)
                if isinstance(item, Case)
                else run_fault(item, golden, root, args.keep is not None)
            )
            results.append(result)
            note = f"  [modified: {', '.join(result.modified[:3])}]" if result.modified else ""
            print(
                f"{result.case:<{width}}  {result.stage:<13} {result.outcome:<10} {result.seconds:>5.1f}  "
                f"{result.line[:150]}{note}",
                flush=True,
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    bad = [r for r in results if r.outcome not in GOOD or r.modified]
    n_cases = len(selected)
    tally = Counter(r.outcome for r in results[:n_cases])
    fault_tally = Counter(r.outcome for r in results[n_cases:])
    modified = sum(1 for r in results if r.modified)
    print(
        f"\n{n_cases} bad inputs: "
        + ", ".join(
            f"{tally[k]} {k}"
            for k in ("clear", "recovered", "warned", "traceback", "silent", "unclear")
            if tally[k] or k in ("clear", "traceback", "silent")
        )
        + f"; {modified} modified an input"
        + (
            f"; {len(chosen_faults)} faults: " + ", ".join(f"{n} {k}" for k, n in sorted(fault_tally.items()))
            if chosen_faults
            else ""
        )
        + f" ({time.perf_counter() - started:.0f} s)"
    )
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
