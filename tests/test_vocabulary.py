"""One run, four spellings: each reads back to the same run, and a bad name says how to write one."""

from __future__ import annotations

import pytest

from mlret.errors import MlretError
from mlret.vocabulary import BASE, RunId, Setting, model_fields, model_label, stage_of


def test_a_run_is_spelt_for_folders_stages_and_tables() -> None:
    run = RunId("minilm", "hybrid", "ar-absent", 1)
    assert run.name == "hybrid/ar-absent/1"
    assert run.path == "minilm/hybrid/ar-absent/1"
    assert run.key == "minilm-hybrid-ar-absent-1"
    assert run.label == "hybrid/ar-absent"
    assert run.stage("train") == "train@minilm-hybrid-ar-absent-1"


def test_a_run_name_parses_back_to_its_run() -> None:
    run = RunId("e5", "multi", "ladder-2", 0)
    assert RunId.parse(run.name, "e5") == run
    assert RunId.parse("mono/balanced/12", "e5").seed == 12
    assert model_fields(run.name) == ("multi", "ladder-2", 0)
    assert model_fields(BASE) == (BASE, "-", -1)


@pytest.mark.parametrize("name", ["hybrid/balanced", "hybrid/balanced/x", "hybrid//0", "a/b/0/extra", "base"])
def test_a_name_that_is_not_a_run_is_refused_with_the_form_to_use(name: str) -> None:
    with pytest.raises(MlretError, match=r"is not a run name") as err:
        RunId.parse(name, "e5")
    assert "{strategy}/{profile}/{seed}" in err.value.fix


def test_the_base_model_is_labelled_and_staged_as_itself() -> None:
    assert model_label(BASE, "-") == BASE
    assert model_label("cross", "balanced") == "cross/balanced"
    assert stage_of(BASE, "encode", "minilm") == "encode_base@minilm"
    assert stage_of("cross/balanced/0", "encode", "minilm") == "encode@minilm-cross-balanced-0"


def test_settings_are_listed_in_table_order_and_read_as_their_names() -> None:
    assert [str(s) for s in Setting] == ["mono", "cross", "multi"]
    assert Setting("cross") is Setting.CROSS
    assert Setting.MULTI == "multi"
    assert f"{Setting.MONO}" == "mono"
