"""Model cards with each model's LAReQA results, written by the `report` stage.

The card inside a model folder (``models/…/README.md``) is written when the model is saved,
before anything evaluates it, and a stage may not change another stage's outputs. So the card
with results is written here, under ``reports/cards/``: the hub's metadata (base model,
languages, licence, datasets) and the model's mAP per dataset and setting, each dataset with
its pool. To publish a model, copy its folder and put this card's front matter and results
section into its README.md, above the usage section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mlret.artifacts import read_json
from mlret.models.export import BUNDLED
from mlret.reporting.markdown import markdown_table
from mlret.vocabulary import Setting

#: The hub datasets XQuAD-R and MLQA-R are built from (LAReQA itself is not on the hub), for `datasets:`.
HUB_DATASETS = {"xquad-r": "google/xquad", "mlqa-r": "facebook/mlqa"}


def card_markdown(model: str, base_model: str, metrics: Mapping[str, object], languages: Sequence[str]) -> str:
    """One model's card: front matter, then mAP (and rank distance) per dataset from its `evaluate` metrics."""
    hub_id, licence = BUNDLED.get(base_model, (base_model, None))
    scored = {d: scores for d, scores in metrics.items() if isinstance(scores, dict)}
    datasets = sorted(d for d, scores in scored.items() if all(s.value in scores for s in Setting))
    front = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity", f"base_model: {hub_id}"]
    if licence:
        front.append(f"license: {licence}")
    front += ["language:", *(f"- {lang}" for lang in sorted(languages))]
    hub = sorted({HUB_DATASETS[d] for d in datasets if d in HUB_DATASETS})
    if hub:
        front += ["datasets:", *(f"- {d}" for d in hub)]
    front += ["tags:", "- sentence-transformers", "- sentence-similarity", "- multilingual-retrieval", "---"]
    lines = [
        *front,
        "",
        f"# {model} ({base_model})",  # two bases have runs of the same name
        "",
        "LAReQA retrieval of this model, as the `evaluate` stage scored it "
        "(mAP over the full candidate pool named in each row, macro over (query, pool) language pairs; "
        "mono: X→X, cross: X→Y with Y ≠ X, multi: all languages at once).",
        "",
    ]
    rows = []
    for dataset in datasets:
        scores = scored[dataset]
        distance = scores[Setting.MULTI.value].get("rank_distance")
        rows.append(
            [
                dataset,
                f"{scores.get('pool', '')}",
                *(f"{scores[s.value]['map']:.3f}" for s in Setting),
                "" if distance is None else f"{distance:.1f}",
            ]
        )
    header = ["dataset", "pool", *(f"{s} mAP" for s in Setting), "multi rank distance"]
    lines += markdown_table(header, rows)
    lines += ["", "Settings, training record and usage: the model folder's own README.md.", ""]
    return "\n".join(lines)


def model_cards(
    eval_metrics_root: str | Path, models: Sequence[str], base_model: str, languages: Sequence[str]
) -> dict[str, str]:
    """``{model: card}`` for every model of the grid, base included, from ``metrics/eval/{model}.json``."""
    return {
        model: card_markdown(model, base_model, read_json(Path(eval_metrics_root) / f"{model}.json"), languages)
        for model in models
    }
