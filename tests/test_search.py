"""The search command: names, the model's own settings, query files, JSON lines."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlret.data.splits import split_articles
from mlret.errors import MlretError
from mlret.models.base import materialise_base_model
from mlret.models.encoder import Encoder
from mlret.params import IndexParams, ModelParams, load_params
from mlret.scoring.index import build_pool_indexes
from mlret.search import main, model_name, read_queries

ROOT = Path(__file__).resolve().parents[1]
MakeParams = Callable[..., ModelParams]
PASSAGES = {
    "en-1": ("en", "the cat sat on the mat"),
    "en-2": ("en", "the dog sat in the house"),
    "fr-1": ("fr", "le chat est sur tapis"),
    "de-1": ("de", "der hund ist im haus"),
    "ru-1": ("ru", "кошка собака дом"),
    "zh-1": ("zh", "猫 狗 房子"),
    "es-1": ("es", "el perro en casa"),
}
QUERIES = ["where the cat sat", "dog house", "猫 狗"]


def test_model_name_is_the_path_under_the_models_root() -> None:
    assert model_name("models/e5/hybrid/balanced/0", "models") == "e5/hybrid/balanced/0"
    assert model_name("./models/e5/base", "models") == "e5/base"
    assert model_name("/runs/exp1/e5/base", "/runs/exp1") == "e5/base"
    for outside in ("e5/hybrid/balanced/0", "models", "/elsewhere/models/e5/base"):
        with pytest.raises(MlretError, match="is not a model folder under 'models'"):
            model_name(outside, "models")


def test_a_missing_index_is_named_before_any_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "q",
                "--model",
                "models/minilm/hybrid/ladder_a/0",
                "--dataset",
                "xquad-r",
                "--index-root",
                str(tmp_path),
                "--params",
                str(ROOT / "params.yaml"),
            ]
        )
    err = capsys.readouterr().err
    assert (
        f"{tmp_path}/minilm/hybrid/ladder_a/0/xquad-r/all.faiss: no index" in err
        and "`dvc repro index@minilm-hybrid-ladder_a-0`" in err
    )
    with pytest.raises(
        SystemExit
    ):  # a dataset params.yaml does not configure: no stage can build it, so none is advised
        main(
            [
                "q",
                "--model",
                "models/e5/base",
                "--dataset",
                "xquad",
                "--index-root",
                str(tmp_path),
                "--params",
                str(ROOT / "params.yaml"),
            ]
        )
    err = capsys.readouterr().err
    assert "'xquad' is not a dataset of" in err and "['mlqa-r', 'xquad-r']" in err and "dvc repro" not in err


def test_a_model_that_is_no_run_of_params_lists_the_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No stage builds an index for a run params.yaml does not have: the error lists those it has instead."""
    shipped = ROOT / "params.yaml"
    args = ["q", "--dataset", "xquad-r", "--index-root", str(tmp_path), "--params", str(shipped)]
    with pytest.raises(SystemExit):
        main([*args, "--model", "models/e5/hybrid/lowres/0"])
    err = capsys.readouterr().err
    assert f"'e5/hybrid/lowres/0' is neither a base model's `{{base}}/base` nor a run of {shipped}." in err
    assert "dvc repro" not in err
    params = load_params(shipped)
    known = [f"{b}/base" for b in params.bases] + [run.id.path for run in params.runs]
    assert f"Pick one of {', '.join(known)}." in err
    with pytest.raises(SystemExit):
        main([*args, "--model", "models/minilm/base"])
    assert "`dvc repro index_base@minilm`" in capsys.readouterr().err


def test_the_help_names_the_command_and_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: mlret search") and "lowres" not in help_text
    assert "the params file whose `index` section" in help_text  # --params says what it is for


def test_degenerate_candidates_are_marked_and_counted(
    tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Punctuation-only and one-character sentence splits stay in the pool, as in evaluation; each hit says so."""
    own = make_params(str(tiny_checkpoint), pooling="mean")
    folder = materialise_base_model(own, tmp_path / "models" / "e5" / "base")
    texts = {
        "c0": ("ar", "و."),
        "c1": ("tr", "I."),
        "c2": ("es", "2)."),
        "c3": ("en", "The Rhine flows north."),
        "c4": ("zh", "德"),
    }
    candidates = pd.DataFrame(
        {"candidate_id": list(texts), "lang": [v[0] for v in texts.values()], "text": [v[1] for v in texts.values()]}
    )
    build_pool_indexes(
        tmp_path / "index" / "e5" / "base" / "xquad-r",
        candidates,
        _encoder(folder, own).encode(list(candidates.text), "passage"),
        IndexParams("flat"),
    )
    main(
        [
            "where",
            "--json",
            "-k",
            "5",
            "--model",
            str(folder),
            "--models-root",
            str(tmp_path / "models"),
            "--dataset",
            "xquad-r",
            "--index-root",
            str(tmp_path / "index"),
            "--params",
            str(ROOT / "params.yaml"),
        ]
    )
    out, err = capsys.readouterr()
    marked = {row["candidate_id"]: row["degenerate"] for row in map(json.loads, out.splitlines())}
    assert marked == {"c0": True, "c1": True, "c2": True, "c3": False, "c4": True}
    assert "xquad-r, all: 5 candidates, its test articles only (in-domain); 4 are punctuation or one character" in err


# --------------------------------------------------------------------------- a tiny index to search


@pytest.fixture
def setup(tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path) -> dict[str, object]:
    """models/base saved with mean pooling and e5-style prefixes; a params.yaml that says otherwise.

    (CLS pooling, prefixes swapped.)
    """
    own = make_params(str(tiny_checkpoint), pooling="mean", query_prefix="query : ", passage_prefix="passage : ")
    folder = materialise_base_model(own, tmp_path / "models" / "e5" / "base")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["bases"]["e5"].update(
        pooling="cls", query_prefix="passage : ", passage_prefix="query : ", max_query_length=16, max_passage_length=32
    )
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    candidates = pd.DataFrame(
        {
            "candidate_id": list(PASSAGES),
            "lang": [v[0] for v in PASSAGES.values()],
            "text": [v[1] for v in PASSAGES.values()],
        }
    )
    pool = _encoder(folder, own).encode(list(candidates.text), "passage")
    build_pool_indexes(tmp_path / "index" / "e5" / "base" / "tiny", candidates, pool, IndexParams("flat"))
    stale = dataclasses.replace(own, **{k: v for k, v in raw["bases"]["e5"].items() if k != "name"})
    return {
        "folder": folder,
        "own": own,
        "stale": stale,
        "pool": pool,
        "candidates": candidates,
        "params": params_file,
        "root": tmp_path,
    }


def _encoder(folder: Path, params: ModelParams) -> Encoder:
    return Encoder(folder, params, device="cpu", precision="fp32", show_progress=False)


def _run(setup: dict[str, object], capsys: pytest.CaptureFixture[str], *args: str, model: str = "e5/base") -> str:
    root = setup["root"]
    main(
        [
            *args,
            "--model",
            str(root / "models" / model),
            "--models-root",
            str(root / "models"),
            "--dataset",
            "tiny",  # type: ignore[operator]
            "--index-root",
            str(root / "index"),
            "--params",
            str(setup["params"]),
            "-k",
            "3",
        ]
    )  # type: ignore[operator]
    return capsys.readouterr().out


def _expected(setup: dict[str, object], params: ModelParams, query: str) -> tuple[list[str], np.ndarray]:
    """Top 3 by exact inner product with the pool, the query encoded with ``params``."""
    # Precision and device as the command picks them (bf16 where the CPU has it), so only the settings can differ.
    vector = Encoder(setup["folder"], params, show_progress=False).encode([query], "query")[0]  # type: ignore[arg-type]
    scores = setup["pool"] @ vector  # type: ignore[operator]
    top = np.argsort(-scores, kind="stable")[:3]
    return [setup["candidates"].candidate_id[i] for i in top], scores[top]  # type: ignore[index]


def test_queries_are_encoded_with_the_models_own_settings(
    setup: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [json.loads(line) for line in _run(setup, capsys, QUERIES[0], "--json").splitlines()]
    ids, scores = _expected(setup, setup["own"], QUERIES[0])  # type: ignore[arg-type]
    assert [r["candidate_id"] for r in rows] == ids and [r["rank"] for r in rows] == [1, 2, 3]
    np.testing.assert_allclose([r["score"] for r in rows], scores, atol=1e-5)
    _, stale_scores = _expected(setup, setup["stale"], QUERIES[0])  # type: ignore[arg-type]
    assert (
        np.abs(np.array([r["score"] for r in rows]) - stale_scores).max() > 1e-3
    )  # params.yaml would have searched differently
    assert rows[0] == {
        "query_id": "1",
        "query": QUERIES[0],
        "rank": 1,
        "score": rows[0]["score"],
        "lang": PASSAGES[ids[0]][0],
        "candidate_id": ids[0],
        "text": PASSAGES[ids[0]][1],
        "degenerate": False,
    }


def test_text_output_of_one_query_is_as_before(setup: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    lines = _run(setup, capsys, QUERIES[0]).splitlines()
    ids, scores = _expected(setup, setup["own"], QUERIES[0])  # type: ignore[arg-type]
    assert lines == [
        f"{rank:>3}  {score:.4f}  [{PASSAGES[i][0]}]  {PASSAGES[i][1]}"
        for rank, (i, score) in enumerate(zip(ids, scores), start=1)
    ]


@pytest.mark.parametrize("layout", ["lines", "tsv"])
def test_a_file_of_queries(
    layout: str, setup: dict[str, object], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = tmp_path / "queries.txt"
    if layout == "lines":  # ids are line numbers, blank lines skipped
        file.write_text(f"{QUERIES[0]}\n\n{QUERIES[1]}\n{QUERIES[2]}\n", encoding="utf-8")
        want_ids = ["1", "3", "4"]
    else:
        file.write_text("".join(f"q-{n}\t{q}\r\n" for n, q in enumerate(QUERIES)), encoding="utf-8")
        want_ids = ["q-0", "q-1", "q-2"]
    rows = [json.loads(line) for line in _run(setup, capsys, "--queries", str(file), "--json").splitlines()]
    assert [(r["query_id"], r["query"], r["rank"]) for r in rows] == [
        (i, q, rank) for i, q in zip(want_ids, QUERIES) for rank in (1, 2, 3)
    ]
    for n, query in enumerate(QUERIES):
        ids, scores = _expected(setup, setup["own"], query)  # type: ignore[arg-type]
        mine = rows[3 * n : 3 * n + 3]
        assert [r["candidate_id"] for r in mine] == ids
        np.testing.assert_allclose([r["score"] for r in mine], scores, atol=1e-5)
    text = _run(setup, capsys, "--queries", str(file)).splitlines()
    assert (
        text[0] == f"query {want_ids[0]}: {QUERIES[0]}"
        and text[4] == ""
        and text[5] == f"query {want_ids[1]}: {QUERIES[1]}"
    )


def test_a_model_without_its_settings_falls_back_to_params_with_a_warning(
    setup: dict[str, object],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tiny_checkpoint: Path,
) -> None:
    root = setup["root"]
    shutil.copytree(tiny_checkpoint, root / "models" / "e5" / "plain")  # type: ignore[operator]
    shutil.copytree(root / "index" / "e5" / "base", root / "index" / "e5" / "plain")  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="mlret.search"):
        rows = [json.loads(line) for line in _run(setup, capsys, QUERIES[1], "--json", model="e5/plain").splitlines()]
    assert "has no sentence-transformers settings" in caplog.text and "params.yaml" in caplog.text
    _, scores = _expected(setup, setup["stale"], QUERIES[1])  # type: ignore[arg-type]
    np.testing.assert_allclose([r["score"] for r in rows], scores, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either a query or --queries FILE"),
        (["q", "--queries", "x.txt"], "give either a query or --queries FILE"),
        (["q", "-k", "0"], "-k 0: must be at least 1"),
    ],
)
def test_bad_arguments(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*args, "--model", "models/e5/base", "--dataset", "xquad-r"])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no queries in the file"),
        ("\n  \n", "no queries in the file"),
        ("a\tfirst\nsecond\n", r"line 2: not `id<TAB>text`"),
        ("a\tfirst\n\tno id\n", r"line 2: not `id<TAB>text`"),
        ("a\tfirst\nb\t  \n", r"line 2: not `id<TAB>text`"),
        ("a\tfirst\na\tsecond\n", "query id 'a' appears more than once"),
    ],
)
def test_bad_query_files(content: str, message: str, tmp_path: Path) -> None:
    file = tmp_path / "q.tsv"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(MlretError, match=message):
        read_queries(file)
    with pytest.raises(MlretError, match="file not found"):
        read_queries(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(MlretError, match="not UTF-8"):
        read_queries(tmp_path / "latin1.txt")


def test_query_file_texts_keep_their_inner_tabs_and_lose_outer_space(tmp_path: Path) -> None:
    file = tmp_path / "q.tsv"
    file.write_text("x\t a\tb \ny\tc\n", encoding="utf-8")
    assert read_queries(file) == [("x", "a\tb"), ("y", "c")]


@pytest.mark.parametrize("query", ["", "  \t "])
def test_an_empty_query_is_refused(query: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([query, "--model", "models/e5/base", "--dataset", "xquad-r"])
    assert capsys.readouterr().err.startswith("error: the query is empty.")


@pytest.mark.parametrize(("source", "target"), [("en", "all"), ("de", "en")])
def test_an_index_copied_over_another_is_refused(
    source: str, target: str, setup: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """en.faiss over all.faiss used to print the wrong candidates' text; de.faiss over en.faiss was an IndexError."""
    folder = setup["root"] / "index" / "e5" / "base" / "tiny"  # type: ignore[operator]
    shutil.copyfile(folder / f"{source}.faiss", folder / f"{target}.faiss")
    with pytest.raises(SystemExit):
        _run(setup, capsys, QUERIES[0], "--lang", target)
    err = capsys.readouterr().err
    assert (
        f"\nerror: {folder / target}.faiss: not the file {target}.manifest.json records" in err and "rebuild it" in err
    )


def test_an_index_stage_stopped_between_its_writes_is_refused(
    setup: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """The index is rewritten, but the stage stopped before the candidates table and the manifest that ties them."""
    folder = setup["root"] / "index" / "e5" / "base" / "tiny"  # type: ignore[operator]
    (folder / "all.manifest.json").unlink()
    with pytest.raises(SystemExit):
        _run(setup, capsys, QUERIES[0])
    assert (
        "all.manifest.json: not found, so all.faiss cannot be checked against its candidates" in capsys.readouterr().err
    )


def test_the_readme_example_asks_about_a_test_article() -> None:
    """The XQuAD-R index holds the test articles only: the README's question must be about one of them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    question = re.search(
        r'mlret search --model models/\w+/hybrid/balanced/0 --dataset xquad-r "([^"]+)"', readme
    ).group(1)  # type: ignore[union-attr]
    params = load_params(ROOT / "params.yaml")
    source = ROOT / params.data.mirror / "xquad-r" / "en.json"  # type: ignore[operator]
    if not source.is_file():
        pytest.skip(f"{source}: the LAReQA mirror is not on this machine")
    articles = json.loads(source.read_text(encoding="utf-8"))["data"]
    asked = [
        n
        for n, article in enumerate(articles)
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
        if qa["question"] == question
    ]
    assert len(asked) == 1, question
    assert asked[0] in split_articles(list(range(len(articles))), params.data.split).test
