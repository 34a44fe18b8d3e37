"""A bad params.yaml is refused with one line naming the key, the value and the fix; never pydantic's report."""

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mlret.errors import MlretError
from mlret.params import (
    IndexParams,
    Profile,
    SplitParams,
    TrainParams,
    load_params,
    parse_params,
)

SHIPPED = Path(__file__).resolve().parents[1] / "params.yaml"
#: A run the shipped grid has, the one the run-level errors below are provoked on.
RUN = "e5-multi-balanced-0"


def shipped() -> dict:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def rejection(edit: Callable[[dict], object]) -> MlretError:
    """The error for the shipped params with ``edit`` applied; it must read as one problem, not a pydantic dump."""
    raw = shipped()
    edit(raw)
    with pytest.raises(MlretError) as caught:
        parse_params(raw)
    err = caught.value
    assert "\n" not in err.what and err.fix and "\n" not in err.fix
    assert "validation error" not in str(err).lower() and "pydantic" not in str(err).lower()
    return err


def edit_at(path: str, key: str, value: object) -> Callable[[dict], None]:
    """Set ``key`` in the mapping at dotted ``path`` ('' is the top level)."""

    def edit(raw: dict) -> None:
        section = raw
        for part in filter(None, path.split("/")):
            section = section[part]
        section[key] = value

    return edit


@pytest.mark.parametrize(
    ("path", "key", "value", "suggestion"),
    [
        ("", "samplng", "mono", "Did you mean `sampling`?"),
        ("data", "mirorr", "/data", "Did you mean `data.mirror`?"),
        ("data/split", "sed", 1, "Did you mean `data.split.seed`?"),
        ("data/sources/xquad-r", "urll", "x", "Did you mean `data.sources.xquad-r.url`?"),
        ("data/sources/mlqa-r", "expected_question", {}, "Did you mean `data.sources.mlqa-r.expected_questions`?"),
        ("bases/e5", "poolng", "cls", "Did you mean `bases.e5.pooling`?"),
        ("train", "batchsize", 16, "Did you mean `train.batch_size`?"),
        ("train", "nonsense", 1, "Remove it. Keys of train: batch_size,"),
        ("mono", "ratio", 1, "`mono` takes no keys"),
        ("cross", "ratio", 1, "`cross` takes no keys"),
        ("multi", "ratio", 1, "`multi` takes no keys"),
        ("hybrid", "mono_ration", 0.3, "Did you mean `hybrid.mono_ratio`?"),
        ("eval", "bier", {}, "Did you mean `eval.beir`?"),
        ("index", "hnsw_mm", 16, "Did you mean `index.hnsw_m`?"),
    ],
)
def test_unknown_keys_are_rejected_at_every_level(path: str, key: str, value: object, suggestion: str) -> None:
    err = rejection(edit_at(path, key, value))
    where = ".".join(filter(None, [*path.split("/"), key]))
    assert err.what == f"{where}: unknown key (set to {value!r})."
    assert suggestion in err.fix


def test_the_keys_listed_for_a_source_are_those_written_in_params_yaml() -> None:
    err = rejection(edit_at("data/sources/xquad-r", "urll", "x"))
    assert err.fix.endswith("Keys of data.sources.xquad-r: url, sha256, expected_questions.")


def test_a_misspelt_key_is_reported_rather_than_the_key_it_leaves_missing() -> None:
    def rename(raw: dict) -> None:
        raw["train"]["batchsize"] = raw["train"].pop("batch_size")

    err = rejection(rename)
    assert err.what.startswith("train.batchsize: unknown key") and "Did you mean `train.batch_size`?" in err.fix


def test_a_top_level_seed_says_where_seeds_live() -> None:
    """`dvc exp run -S seed=1` writes this key, which no stage reads."""
    err = rejection(edit_at("", "seed", 1))
    assert err.what == "seed: unknown key (set to 1)."
    assert "`runs.{key}.seed`" in err.fix and "`data.split.seed`" in err.fix


def test_a_source_name_comes_from_its_key_only() -> None:
    err = rejection(edit_at("data/sources/xquad-r", "name", "other"))
    assert err.what.startswith("data.sources.xquad-r.name = 'other'")


def test_profile_keys_are_languages_of_the_sources() -> None:
    err = rejection(edit_at("profiles/ladder_a", "thh", 0.5))
    assert err.what == "profiles.ladder_a.thh = 0.5 is not a language of any data source."
    assert "Did you mean `profiles.ladder_a.th`?" in err.fix


def drop(path: str, key: str) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        section = raw
        for part in filter(None, path.split("/")):
            section = section[part]
        section.pop(key)

    return edit


def update(path: str, **values: object) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        section = raw
        for part in filter(None, path.split("/")):
            section = section[part]
        section.update(values)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # whole numbers stay whole, numbers stay numbers, booleans stay booleans
        (update("train", max_steps=150.5), r"^train.max_steps = 150.5 is not an integer\.$"),
        (update("data", download_retries="abc"), r"^data.download_retries = 'abc' is not an integer\.$"),
        (update("data", download_retries="3"), r"^data.download_retries = '3' is not an integer\.$"),
        (update("train", batch_size=True), r"^train.batch_size = True is not an integer\.$"),
        (
            update("train", learning_rate="3e-5"),
            r"^train.learning_rate = '3e-5' is not a number\.$",
        ),  # YAML reads 3e-5 (no dot) as text
        (update("train", symmetric="yes"), r"^train.symmetric = 'yes' is not true or false\.$"),
        (update("bases/e5", query_prefix=1), r"^bases.e5.query_prefix = 1 is not a string\.$"),
        (update("train", epochs=float("nan")), r"^train.epochs = nan is not a finite number\.$"),
        (update("", runs=["mono"]), r"^runs is not a mapping \(got \['mono'\]\)\.$"),
        (update("", mono=None), r"^mono is not a mapping \(got None\)\.$"),
        # ranges
        (edit_at(f"runs/{RUN}", "seed", -1), rf"^runs.{RUN}.seed = -1 must be at least 0\.$"),
        (
            edit_at(f"runs/{RUN}", "seed", 2**32),
            rf"^runs.{RUN}.seed = 4294967296 must be below 4294967296\.$",
        ),
        (update("data/split", seed=-1), r"^data.split.seed = -1 must be at least 0\.$"),
        (update("train", weight_decay=-5), r"^train.weight_decay = -5 must be at least 0\.$"),
        (update("train", learning_rate=0), r"^train.learning_rate = 0 must be a positive number\.$"),
        (update("train", temperature=-0.05), r"^train.temperature = -0.05 must be a positive number\.$"),
        (update("train", save_every=0), r"^train.save_every = 0 must be a positive integer\.$"),
        (update("train", hard_negatives=-1), r"^train.hard_negatives = -1 must be at least 0\.$"),
        (update("train", sampling_alpha=-0.5), r"^train.sampling_alpha = -0.5 must be at least 0\.$"),
        (update("train", sampling_alpha=120), r"^train.sampling_alpha = 120 must be at most 10\.$"),  # n**120 overflows
        (update("train", warmup_ratio=1.5), r"^train.warmup_ratio = 1.5 must be at most 1\.$"),
        (update("bases/e5", max_query_length=2), r"^bases.e5.max_query_length = 2 must be at least 4\.$"),
        (update("train", max_passage_length=3), r"^train.max_passage_length = 3 must be at least 4\.$"),
        (update("index", hnsw_m=0), r"^index.hnsw_m = 0 must be a positive integer\.$"),
        (update("hybrid", mono_ratio=1.2), r"^hybrid.mono_ratio = 1.2 must be at most 1\.$"),
        (update("profiles/ladder_a", th=1.5), r"^profiles.ladder_a.th = 1.5 must be at most 1\.$"),
        (update("profiles/ladder_a", default=-0.1), r"^profiles.ladder_a.default = -0.1 must be at least 0\.$"),
        (
            update("data/sources/mlqa-r/expected_questions", de=0),
            r"^data.sources.mlqa-r.expected_questions.de = 0 must be a positive integer\.$",
        ),
        (update("", profiles={}), r"^profiles is empty\.$"),
        (update("", runs={}), r"^runs is empty\.$"),
        (update("bases/e5", name=""), r"^bases.e5.name is empty\.$"),
        # choices
        (update("", sampling="mixed"), r"^sampling = 'mixed' is not one of 'mono', 'cross', 'multi' or 'hybrid'\.$"),
        (
            edit_at(f"runs/{RUN}", "strategy", "mixed"),
            rf"^runs.{RUN}.strategy = 'mixed' is not one of",
        ),
        (
            edit_at(f"runs/{RUN}", "corpora", "some"),
            rf"^runs.{RUN}.corpora = 'some' is not one of 'all' or 'in_domain'\.$",
        ),
        (update("bases/e5", pooling="max"), r"^bases.e5.pooling = 'max' is not one of 'mean' or 'cls'\.$"),
        (
            update("train", precision="fp8"),
            r"^train.precision = 'fp8' is not one of 'auto', 'fp32', 'bf16' or 'fp16'\.$",
        ),
        (update("index", type="annoy"), r"^index.type = 'annoy' is not one of 'flat', 'hnsw' or 'ivf'\.$"),
        # checks within a section
        (
            update("data/sources/mlqa-r/sha256", de="abc"),
            r"^data.sources.mlqa-r.sha256.de = 'abc' is not a SHA-256 hex digest\.$",
        ),
        (
            update("data/sources/mlqa-r", url="https://example.org/de.json"),
            r"^data.sources.mlqa-r.url = 'https://example.org/de.json' has no `\{lang\}`",
        ),
        (
            update("data/sources/mlqa-r", url="https://x.org/{version}/{lang}.json"),
            r"^data.sources.mlqa-r.url = .* has the unknown placeholder\(s\) \['version'\]\.$",
        ),
        (
            update("data/sources/mlqa-r", url="https://x.org/{lang}.json{"),
            r"^data.sources.mlqa-r.url = .* is not a valid URL pattern \(",
        ),
        (
            drop("data/sources/mlqa-r/expected_questions", "de"),
            r"^data.sources.mlqa-r.expected_questions: lists \['ar', 'en',",
        ),
        (update("data/split", test=0.5), r"^data.split: fractions add up to 1.2, not 1\.$"),
        (update("data/split", train=0.0, test=0.9), r"^data.split: train and test fractions must be positive\.$"),
        (update("train", max_steps=None, epochs=None), r"^train: neither max_steps nor epochs is set\.$"),
        (
            update("index", type="ivf", ivf_nlist=16, ivf_nprobe=32),
            r"^index.ivf_nprobe = 32 exceeds index.ivf_nlist = 16\.$",
        ),
        (
            update("eval", beir={"miracl": "/nonexistent/miracl"}),
            r"^eval.beir.miracl = '/nonexistent/miracl' is not a folder\.$",
        ),
        (update("eval", trec_runs=["mono", "mono"]), r"^eval.trec_runs.*more than once"),
        (update("eval", trec_runs=["mono", "crosss"]), r"^eval.trec_runs.*crosss"),
        # checks across sections
        (
            update("data", train_source="tydi"),
            r"^data.train_source = 'tydi' is not one of data.sources \['mlqa-r', 'xquad-r'\]\.$",
        ),
        (
            update(
                "", runs={"e5-mono-balanced-0": {"base": "e5", "strategy": "mono", "profile": "balanced", "seed": 0}}
            ),
            r"^sampling = 'hybrid' is not among the strategies trained on base 'e5' \['mono'\]\.$",
        ),
        (
            edit_at(f"runs/{RUN}", "seed", 1),
            rf"^runs.{RUN}: names the run 'e5-multi-balanced-1'\.$",
        ),
        (
            edit_at(f"runs/{RUN}", "profile", "lowres"),
            rf"^runs.{RUN}.profile = 'lowres' is not a profile of `profiles`\.$",
        ),
        (
            edit_at(f"runs/{RUN}", "base", "e6"),
            rf"^runs.{RUN}.base = 'e6' is not a base model of `bases`\.$",
        ),
        (
            update("report/primary_scope", minilmm="mono"),
            r"^report.primary_scope.minilmm = 'mono' is not a base model of `bases`\.$",
        ),
        (update("report/primary_scope", minilm="cross-lingual"), r"^report.primary_scope.minilm = 'cross-lingual' is"),
        (update("", seeds=[0, 1]), r"^seeds: unknown key \(set to \[0, 1\]\)\.$"),
        (update("", strategies=["mono"]), r"^strategies: unknown key \(set to \['mono'\]\)\.$"),
        # missing keys and sections
        (drop("bases/e5", "max_query_length"), r"^bases.e5: `max_query_length` is missing\.$"),
        (drop("", "hybrid"), r"^params.yaml: `hybrid` is missing\.$"),
        (drop("data", "split"), r"^data: `split` is missing\.$"),
    ],
)
def test_bad_values_fail_with_their_key_and_value(edit: Callable[[dict], None], message: str) -> None:
    err = rejection(edit)
    assert re.search(message, err.what), err.what


def test_a_run_on_an_unknown_base_suggests_the_closest_one() -> None:
    err = rejection(edit_at(f"runs/{RUN}", "base", "minlm"))
    assert err.fix == "Did you mean `minilm`? Pick one of ['e5', 'minilm']."
    with pytest.raises(MlretError, match=r"bases: no base model 'e6'\.") as caught:
        load_params(SHIPPED).model("e6")
    assert caught.value.fix == "Pick one of ['e5', 'minilm']."


def test_each_fix_names_the_key_to_change() -> None:
    assert rejection(update("train", max_steps=150.5)).fix == "Give `train.max_steps` a whole number."
    assert rejection(update("train", weight_decay=-5)).fix == "Set `train.weight_decay` to 0 or more."
    assert rejection(edit_at(f"runs/{RUN}", "seed", -1)).fix == f"Set `runs.{RUN}.seed` to 0 or more."
    assert (
        rejection(edit_at(f"runs/{RUN}", "seed", 1)).fix
        == "Key each run `{base}-{strategy}-{profile}-{seed}`: rename it to `e5-multi-balanced-1`."
    )
    assert rejection(update("", seeds=[0])).fix.startswith("Remove it: each training run's seed is `runs.{key}.seed`")
    assert rejection(update("bases/e5", pooling="max")).fix.startswith("Use one of 'mean' or 'cls' (`mean` for e5")
    assert rejection(drop("bases/e5", "normalize")).fix == "Set `bases.e5.normalize` in params.yaml."


def test_objects_built_in_code_are_validated_like_the_file() -> None:
    """Positional construction and dataclasses.replace keep working, and fail with the same one-line errors."""
    train = load_params(SHIPPED).train
    assert dataclasses.replace(train, max_steps=3).max_steps == 3
    with pytest.raises(MlretError, match=r"^train.max_steps = 2.5 is not an integer\."):
        dataclasses.replace(train, max_steps=2.5)
    with pytest.raises(MlretError, match=r"^train.batchsize: unknown key"):
        TrainParams(**{**dataclasses.asdict(train), "batchsize": 16})
    assert Profile("p", 0.5, {"en": 1.0}).fraction("ru") == 0.5
    with pytest.raises(MlretError, match=r"^profiles.p.fractions.ru = 1.5 must be at most 1\."):
        Profile("p", 1.0, {"ru": 1.5})
    with pytest.raises(MlretError, match=r"^data.split.seed = -1 must be at least 0\."):
        SplitParams(0.6, 0.1, 0.3, seed=-1)
    with pytest.raises(MlretError, match=r"^index: `type` is missing\."):
        IndexParams()  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.batch_size = 16  # type: ignore[misc]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"params.yaml: file not found\."),
        ("train: [unclosed\n", r"params.yaml: not valid YAML \("),
        ("- a list\n", r"params.yaml: expected a mapping at the top level\."),
        ("", r"params.yaml: expected a mapping at the top level\."),
        (b"\xff\xfe\x00binary", r"params.yaml: cannot be read as text"),
    ],
)
def test_unreadable_files_fail_with_one_message(tmp_path: Path, content: str | bytes | None, message: str) -> None:
    path = tmp_path / "params.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(MlretError, match=message) as caught:
        load_params(path)
    assert "\n" not in caught.value.what


def test_a_directory_is_not_a_params_file(tmp_path: Path) -> None:
    with pytest.raises(MlretError, match="cannot be read as text"):
        load_params(tmp_path)


@pytest.mark.parametrize("name", ["../../esc", "a/b", "my profile", "-x", ".hidden", "é/x"])
def test_profile_names_that_are_paths_or_arguments_are_refused(name: str) -> None:
    """A profile name becomes data/splits/{name}/ and a `--profile` argument.

    `../../esc` would write outside the stage's folder.
    """

    def rename(raw: dict) -> None:
        raw["profiles"][name] = raw["profiles"].pop("balanced")

    err = rejection(rename)
    assert err.what.startswith(f"profiles.{name} = {name!r} is not a safe name")
    assert "letters, digits, `_` and `-`" in err.fix
    with pytest.raises(MlretError, match="is not a safe name"):
        Profile(name, 1.0)  # built in code (by a benchmark or a test), it is refused the same way


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (
            lambda raw: raw["data"]["sources"].__setitem__("../x", raw["data"]["sources"].pop("mlqa-r")),
            "data.sources.../x",
        ),
        (
            lambda raw: raw["data"]["sources"]["mlqa-r"]["sha256"].__setitem__("../de", "0" * 64),
            "data.sources.mlqa-r.sha256.../de",
        ),
        (lambda raw: raw["profiles"]["balanced"].__setitem__("a/b", 0.5), "profiles.balanced.a/b"),
    ],
)
def test_source_and_language_names_that_are_paths_are_refused(edit: Callable[[dict], None], where: str) -> None:
    err = rejection(edit)
    assert err.what.startswith(f"{where} = ") and "is not a safe name" in err.what


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "train:\n  symmetric: no\n",
            r"params.yaml, line 2: `no` is a boolean to the stages \(YAML 1.1\) but a string to DVC",
        ),
        ("train:\n  symmetric: On\n", r"params.yaml, line 2: `On` is a boolean"),
        (
            "train:\n  batch_size: 4\n  lr: 1\n  batch_size: 8\n",
            r"params.yaml, line 4: key 'batch_size' appears twice \(first on line 2\)",
        ),
    ],
)
def test_yaml_that_dvc_and_the_stages_would_read_differently_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MlretError, match=message) as caught:
        load_params(path)
    assert "\n" not in caught.value.what and caught.value.fix
