from pathlib import Path

import pytest
import yaml

from mlret.errors import MlretError
from mlret.params import load_params, parse_params

SHIPPED = Path(__file__).resolve().parents[1] / "params.yaml"


def shipped() -> dict:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def test_shipped_params_are_valid_and_describe_the_lareqa_release() -> None:
    params = load_params(SHIPPED)
    xquad, mlqa = params.data.sources["xquad-r"], params.data.sources["mlqa-r"]
    assert len(xquad.languages) == 11 and set(xquad.expected_questions.values()) == {1190}
    assert mlqa.expected_questions == {"ar": 517, "de": 512, "en": 1148, "es": 500, "hi": 507, "vi": 511, "zh": 504}
    assert params.profiles["lowres"].fraction("th") == 0.05 and params.profiles["lowres"].fraction("en") == 1.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["profiles"]["lowres"].update(xx=0.5), r"profiles.lowres.xx: unknown language 'xx'"),
        (lambda p: p["profiles"]["lowres"].update(th=1.5), r"profiles.lowres.th = 1.5 is not a fraction in \[0, 1\]"),
        (lambda p: p["data"].update(train_source="tydi"), r"data.train_source = 'tydi' is not one of"),
        (lambda p: p["data"]["split"].update(test=0.5), r"data.split fractions add up to 1.2"),
        (lambda p: p.update(sampling="mixed"), r"sampling = 'mixed' is not one of"),
        (lambda p: p["model"].update(pooling="max"), r"model.pooling = 'max'"),
        (lambda p: p["data"]["sources"]["mlqa-r"]["sha256"].update(de="abc"), r"data.sources.mlqa-r.sha256.de = 'abc'"),
        (lambda p: p["model"].pop("max_query_length"), r"model: `max_query_length` is missing"),
    ],
)
def test_bad_values_fail_with_their_key(edit, message: str) -> None:
    raw = shipped()
    edit(raw)
    with pytest.raises(MlretError, match=message):
        parse_params(raw)


def test_profiles_stay_valid_when_the_training_source_changes() -> None:
    raw = shipped()
    raw["data"]["train_source"] = "mlqa-r"  # lowres names el/th/tr, which MLQA-R lacks: they simply do not apply
    assert parse_params(raw).data.train_source == "mlqa-r"
