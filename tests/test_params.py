"""params.yaml read into the values the stages use: the shipped grid, defaults, plain-string choices."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from mlret.errors import MlretError
from mlret.params import (
    STRATEGIES,
    CrossSettings,
    HybridSettings,
    IndexParams,
    MonoSettings,
    MultiSettings,
    Strategy,
    TrainingRun,
    load_params,
    parse_params,
    read_yaml,
)
from mlret.vocabulary import RunId

SHIPPED = Path(__file__).resolve().parents[1] / "params.yaml"


def shipped() -> dict:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def test_shipped_params_are_valid_and_describe_the_lareqa_release() -> None:
    params = load_params(SHIPPED)
    xquad, mlqa = params.data.sources["xquad-r"], params.data.sources["mlqa-r"]
    assert len(xquad.languages) == 11 and set(xquad.expected_questions.values()) == {1190}
    assert mlqa.expected_questions == {"ar": 517, "de": 512, "en": 1148, "es": 500, "hi": 507, "vi": 511, "zh": 504}
    assert params.profiles["ladder_a"].fraction("vi") == 0.05 and params.profiles["ladder_a"].fraction("en") == 1.0
    assert params.profiles["ladder_a"].name == "ladder_a" and "default" not in params.profiles["ladder_a"].fractions
    assert xquad.name == "xquad-r" and xquad.url_for("th").endswith("/xquad-r/th.json")
    assert params.strategy_settings == {
        Strategy.MONO: MonoSettings(),
        Strategy.CROSS: CrossSettings(),
        Strategy.MULTI: MultiSettings(),
        Strategy.HYBRID: HybridSettings(0.5),
    }
    assert params.sampling in params.strategies
    assert not hasattr(params, "seed")
    assert [run.name for run in params.runs][:2] == ["mono/balanced/0", "cross/balanced/0"]


def test_the_shipped_ladder_is_a_latin_square() -> None:
    """Every ladder language sits at every severity once, so severity is not confounded with language."""
    ladder = [p for name, p in load_params(SHIPPED).profiles.items() if name.startswith("ladder")]
    languages = sorted(ladder[0].fractions)
    severities = sorted(ladder[0].fractions.values())
    assert severities == [0.0, 0.01, 0.05, 0.25] and len(ladder) == len(languages) == 4
    for profile in ladder:
        assert sorted(profile.fractions.values()) == severities and sorted(profile.fractions) == languages
    for lang in languages:
        assert sorted(p.fractions[lang] for p in ladder) == severities


def test_an_int_stands_for_a_float_and_optional_values_may_be_null() -> None:
    raw = shipped()
    raw["train"].update(learning_rate=1, max_grad_norm=2, max_steps=None, epochs=2)
    raw["data"].update(mirror="")
    raw["eval"].update(beir=None)
    params = parse_params(raw)
    assert params.train.learning_rate == 1.0 and isinstance(params.train.learning_rate, float)
    assert params.train.max_steps is None and params.train.epochs == 2.0
    assert params.data.mirror is None and params.eval.beir == {}


def test_optional_keys_take_their_defaults() -> None:
    raw = shipped()
    del raw["data"]["mirror"], raw["data"]["download_retries"], raw["eval"]["beir"], raw["eval"]["trec_runs"]
    raw["index"] = {"type": "hnsw"}
    raw["profiles"]["ladder_a"].pop("default")
    params = parse_params(raw)
    assert params.data.mirror is None and params.data.download_retries == 3 and params.eval.beir == {}
    assert params.eval.trec_runs == ["mono", "multi"]
    assert params.index == IndexParams("hnsw") and params.index.hnsw_m == 32
    assert params.profiles["ladder_a"].default == 1.0


def test_a_run_is_scored_on_every_corpus_unless_it_says_otherwise() -> None:
    raw = shipped()
    del raw["runs"]["minilm-multi-ladder_a-1"]["corpora"]
    runs = {run.key: run for run in parse_params(raw).runs}
    assert runs["minilm-multi-ladder_a-1"].corpora == "all" and runs["minilm-multi-ladder_b-1"].corpora == "in_domain"


def test_profiles_stay_valid_when_the_training_source_changes() -> None:
    raw = shipped()
    raw["data"]["train_source"] = "mlqa-r"
    raw["profiles"]["ladder_a"]["th"] = 0.05  # th is not in MLQA-R: its fraction simply does not apply
    assert parse_params(raw).data.train_source == "mlqa-r"


def test_choices_read_and_serialise_as_plain_strings() -> None:
    """Reports print and store the headline strategy; an enum repr there would break run names and metrics."""
    params = load_params(SHIPPED)
    assert params.sampling is Strategy.HYBRID and params.sampling == "hybrid"
    assert f"{params.sampling}/lowres/0" == "hybrid/lowres/0" and str(params.train.precision) == "auto"
    assert (
        json.dumps({"headline": params.sampling, "pooling": params.model("e5").pooling})
        == '{"headline": "hybrid", "pooling": "mean"}'
    )
    assert STRATEGIES == ("mono", "cross", "multi", "hybrid") and [s.value for s in Strategy] == list(STRATEGIES)


def test_the_split_seed_may_be_large_but_training_seeds_fit_numpy() -> None:
    """The split draws from numpy's Generator (any size); training seeds numpy's global state (32 bits)."""
    raw = shipped()
    raw["data"]["split"]["seed"] = 2**40
    raw["runs"]["e5-mono-balanced-4294967295"] = {
        "base": "e5",
        "strategy": "mono",
        "profile": "balanced",
        "seed": 2**32 - 1,
    }
    params = parse_params(raw)
    assert params.data.split.seed == 2**40 and params.seeds == [0, 1, 2**32 - 1]


def test_a_strategy_is_keyed_to_its_own_settings_only() -> None:
    """The settings object says which strategy it configures; a run cannot get another strategy's settings."""
    params = load_params(SHIPPED)
    assert all(settings.strategy is strategy for strategy, settings in params.strategy_settings.items())
    assert params.strategy_settings[Strategy.HYBRID] is params.hybrid
    with pytest.raises(MlretError, match=r"^hybrid is not a mapping \(got MonoSettings\(\)\)\.\n"):
        dataclasses.replace(params, hybrid=MonoSettings())


def test_a_file_without_a_schedule_trains_by_quota() -> None:
    """The documented default: dropping `train.schedule` from params.yaml must not change how runs train."""
    raw = shipped()
    del raw["train"]["schedule"]
    assert parse_params(raw).train.schedule == "quota"


def test_a_run_is_spelt_by_its_identifier() -> None:
    run = TrainingRun("minilm", "hybrid", "ladder_a", 1)
    assert run.id == RunId("minilm", "hybrid", "ladder_a", 1) and RunId.parse(run.name, "minilm") == run.id
    assert (run.name, run.key) == ("hybrid/ladder_a/1", "minilm-hybrid-ladder_a-1")
    assert repr(run.id) == repr(RunId.parse("hybrid/ladder_a/1", "minilm"))  # plain strings, as a parsed name holds


def test_the_gpu_preset_is_valid_and_trains_every_strategy_on_the_whole_ladder_with_five_seeds() -> None:
    preset = load_params(SHIPPED.parent / "presets" / "paper-gpu.yaml")
    shipped_params = load_params(SHIPPED)
    assert preset.profiles == shipped_params.profiles and preset.data == shipped_params.data
    assert set(preset.bases) == set(shipped_params.bases)
    assert all(preset.model(b).name == shipped_params.model(b).name for b in preset.bases)
    grid = {(r.base, str(r.strategy), r.profile, r.seed, str(r.corpora)) for r in preset.runs}
    assert grid == {
        (b, s, p, seed, "all") for b in preset.bases for s in STRATEGIES for p in preset.profiles for seed in range(5)
    }
    assert not any(m.freeze_word_embeddings for m in preset.bases.values()) and preset.train.batch_size == 128


def test_quoted_yes_and_yaml_12_booleans_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 'no'\nb: true\nc: False\n", encoding="utf-8")
    assert read_yaml(path) == {"a": "no", "b": True, "c": False}
