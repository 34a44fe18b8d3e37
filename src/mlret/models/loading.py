"""Checkpoints on disk and in memory, safely: what a checkpoint is, how it is read and written.

Every stage reads models through :func:`load_checkpoint`; the base model
(:mod:`mlret.models.base`) and every trained one are written through the
checks and writers here, so there is exactly one place that decides what a
checkpoint is: a directory with ``config.json``, ``*.safetensors`` weights and
a tokenizer. Pickle weights (``pytorch_model.bin``) are refused rather than
loaded, because unpickling a file from outside runs arbitrary code;
``trust_remote_code`` is off for the same reason.

Both writers also make the folder a complete sentence-transformers model with
a model card (:mod:`mlret.models.export`), so that it loads with the pooling,
normalisation and prefixes it was evaluated with anywhere else too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlret.artifacts import staged_dir, write_json
from mlret.errors import MlretError
from mlret.models.export import write_model_files
from mlret.params import ModelParams

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def load_checkpoint(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a checkpoint directory written by this package (or any safetensors one), in eval mode."""
    path = Path(path)
    if not path.is_dir():
        raise MlretError(
            f"model checkpoint {path}: no such directory.",
            "Run the stage that produces it first (`dvc repro`), or fix the path.",
        )
    check_checkpoint_dir(path, str(path))
    return load_dir(path, str(path))


def check_checkpoint_dir(path: Path, name: str) -> None:
    if not (path / "config.json").is_file():
        raise MlretError(
            f"model {name!r}: {path} has no config.json, so it is not a transformers checkpoint.",
            "Point at the directory that `save_pretrained` wrote (it holds config.json and *.safetensors).",
        )
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        found = f"only pickle weights ({', '.join(pickles)})" if pickles else "no safetensors weights"
        raise MlretError(
            f"model {name!r}: {path} has {found}; "
            "pickle checkpoints are never loaded, since unpickling runs arbitrary code.",
            "Use a model that ships model.safetensors, or convert it once where you trust the file "
            "(`AutoModel.from_pretrained(...).save_pretrained(dir)` with transformers >= 5 writes safetensors) "
            "and point the base model's `name` (under `bases` in params.yaml) at that directory.",
        )


def load_dir(path: Path, name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoTokenizer

    try:
        net = AutoModel.from_pretrained(path, use_safetensors=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except SafetensorError as err:  # a truncated or empty weights file (an interrupted copy, a full disk)
        raise MlretError(
            f"model {name!r}: the weights in {path} are damaged ({str(err).strip().splitlines()[0]}).",
            "Delete the folder and re-run the stage that wrote it (`dvc repro`), or copy the checkpoint again.",
        ) from None
    except (OSError, ValueError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MlretError(
            f"model {name!r}: could not load the checkpoint in {path}: {first_line}",
            "Check that the directory holds a complete transformers model and tokenizer "
            "(models needing trust_remote_code are not supported).",
        ) from None
    net.eval()
    return net, tokenizer


def save_checkpoint(
    net: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    model: ModelParams,
    training: Mapping[str, Any] | None = None,
    started_from: Path | None = None,
) -> Path:
    """Write a checkpoint that :func:`load_checkpoint` reads, in one rename.

    ``model`` is how the checkpoint encodes (written for sentence-transformers
    and the card); ``training`` is the run's exact training params, written as
    ``training_params.json`` and summarised in the card. Nothing here is pickled.
    ``started_from`` is the checkpoint training began with: a word-embedding
    shard identical to its own is stored as a hard link to it, not a copy.
    """
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as target:
        net.save_pretrained(target, safe_serialization=True)
        # The fast tokenizer keeps the truncation and padding of its last call, which would make the saved
        # tokenizer.json depend on what the run encoded last (nothing, for a run resumed after its last step).
        # Every call sets its own again, so the file is saved without them.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            backend.no_truncation()
            backend.no_padding()
        tokenizer.save_pretrained(target)
        shard_word_embeddings(target)
        if started_from is not None:
            _link_if_identical(target / WORD_EMBEDDINGS_SHARD, Path(started_from) / WORD_EMBEDDINGS_SHARD)
        write_model_files(target, model, training)
    return out_dir


def _link_if_identical(ours: Path, theirs: Path) -> None:
    """Replace ``ours`` by a hard link to ``theirs`` when the two files hold the same bytes.

    DVC leaves a new output file whose content its cache already holds as a
    file of its own; linked to the base model's (itself linked to the cache),
    a frozen run's 384 MB embedding shard costs no disk at all. Nothing writes
    into a saved checkpoint afterwards, so the link is never written through.
    Where linking is impossible (another file system) the copy stays.
    """
    import filecmp

    if not (ours.is_file() and theirs.is_file()) or not filecmp.cmp(ours, theirs, shallow=False):
        return
    linked = ours.with_name(ours.name + ".link")
    try:
        os.link(theirs, linked)
    except OSError:
        return
    os.replace(linked, ours)


WORD_EMBEDDINGS_SHARD = "model-00001-of-00002.safetensors"
OTHER_WEIGHTS_SHARD = "model-00002-of-00002.safetensors"
SHARD_INDEX = "model.safetensors.index.json"


def shard_word_embeddings(folder: Path) -> None:
    """Rewrite ``model.safetensors`` as two shards: the word-embedding matrix alone, and every other weight.

    The matrix is most of a multilingual encoder's weights (384 of 470 MB for
    multilingual-e5-small), and runs that train with it frozen hold it
    unchanged. Alone in its shard it is byte-identical in the base model and
    in every such run, so DVC's content-addressed cache stores it once and,
    with the project's ``cache.type`` (reflink or hardlink), every workspace
    copy of it is the cached file itself. The folder stays a standard sharded
    transformers checkpoint (``model.safetensors.index.json``); a folder that
    transformers already sharded (a large model) is left as it is.
    """
    from safetensors.torch import load_file, save_file

    single = folder / "model.safetensors"
    name = _word_embeddings_name(folder)
    if not single.is_file() or name is None:
        return
    tensors = load_file(single)
    if name not in tensors:
        return
    shards = {WORD_EMBEDDINGS_SHARD: {name: tensors.pop(name)}, OTHER_WEIGHTS_SHARD: tensors}
    for file, part in shards.items():
        save_file(part, str(folder / file), metadata={"format": "pt"})
    weight_map = {key: file for file, part in shards.items() for key in sorted(part)}
    total = sum(t.numel() * t.element_size() for part in shards.values() for t in part.values())
    write_json(folder / SHARD_INDEX, {"metadata": {"total_size": total}, "weight_map": weight_map})
    single.unlink()


def _word_embeddings_name(folder: Path) -> str | None:
    """The state-dict name of the input embedding matrix of the model in ``folder``.

    Found on the meta device: no weights are read.
    """
    import torch
    from transformers import AutoConfig, AutoModel

    try:
        with torch.device("meta"):
            net = AutoModel.from_config(AutoConfig.from_pretrained(folder))
    except (OSError, ValueError, KeyError):
        return None
    weight = net.get_input_embeddings().weight
    return next((name for name, param in net.named_parameters() if param is weight), None)
