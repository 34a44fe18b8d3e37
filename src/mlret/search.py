"""Search a saved index with a trained model: the models are meant to be used, not only scored.

    python -m mlret.search --model models/hybrid/lowres/0 --dataset xquad-r "Who won the Super Bowl?"

The query is encoded with the model's own settings (query prefix, pooling,
length) from params.yaml, then looked up in ``data/index/{model}/{dataset}/``
(the multilingual pool, or one language with ``--lang``) that the `evaluate`
stage built. The query is embedded before FAISS is loaded, so that torch and
FAISS do not initialise their OpenMP runtimes at the same time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlret.errors import MlretError, cli_errors
from mlret.params import load_params


def model_name(model_dir: str) -> str:
    """``models/hybrid/lowres/0`` -> ``hybrid/lowres/0``, the name stages use for its artifacts."""
    path = Path(model_dir)
    parts = path.parts[1:] if path.parts and path.parts[0] == "models" else path.parts
    if not parts:
        raise MlretError(f"--model {model_dir!r} names no model.", "Pass a directory under models/, e.g. models/hybrid/lowres/0.")
    return "/".join(parts)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlret.search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query", help="the question to search for, in any language")
    parser.add_argument("--model", required=True, help="a checkpoint directory under models/ (e.g. models/base)")
    parser.add_argument("--dataset", required=True, help="an evaluated dataset, e.g. xquad-r")
    parser.add_argument("--lang", default="all", help="search one language's pool instead of all of them")
    parser.add_argument("-k", type=int, default=10, help="how many results to print")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    name = model_name(args.model)
    index_dir = Path("data/index") / name / args.dataset
    index_path = index_dir / f"{args.lang}.faiss"
    if not index_path.is_file():
        raise MlretError(f"{index_path}: no index for model {name!r}, dataset {args.dataset!r}, pool {args.lang!r}.", "Run `dvc repro` to build it, and check the names.")

    from mlret.models.encoder import Encoder

    query = Encoder(Path("models") / name, params.model, show_progress=False).encode([args.query], "query")

    from mlret.artifacts import read_table
    from mlret.retrieval.index import load_index, search

    index = load_index(index_path, params.index)
    candidates = read_table(index_dir / f"{args.lang}.candidates.parquet", ["candidate_id", "lang", "text"], "evaluate")
    indices, scores = search(index, query, min(args.k, index.ntotal))
    for rank, (row, score) in enumerate(zip(indices[0], scores[0]), start=1):
        if row < 0:
            break
        hit = candidates.iloc[int(row)]
        print(f"{rank:>3}  {score:.4f}  [{hit.lang}]  {hit.text}")


if __name__ == "__main__":
    main()
