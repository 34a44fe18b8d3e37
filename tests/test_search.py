"""The search command names a model's artifacts after its folder under the models root."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlret.errors import MlretError
from mlret.search import main, model_name


def test_model_name_is_the_path_under_the_models_root() -> None:
    assert model_name("models/hybrid/lowres/0", "models") == "hybrid/lowres/0"
    assert model_name("./models/base", "models") == "base"
    assert model_name("/runs/exp1/base", "/runs/exp1") == "base"
    for outside in ("hybrid/lowres/0", "models", "/elsewhere/models/base"):
        with pytest.raises(MlretError, match="is not a model folder under 'models'"):
            model_name(outside, "models")


def test_a_missing_index_is_named_before_any_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["q", "--model", "models/base", "--dataset", "xquad-r", "--index-root", str(tmp_path), "--params", str(Path(__file__).resolve().parents[1] / "params.yaml")])
    assert f"{tmp_path}/base/xquad-r/all.faiss: no index" in capsys.readouterr().err
