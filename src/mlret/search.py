"""Search a saved index with a trained model: the models are meant to be used, not only scored.

    python -m mlret.search --model models/hybrid/lowres/0 --dataset xquad-r "Who won the Super Bowl?"

The query is encoded with the model's own settings (query prefix, pooling,
length) from params.yaml, then looked up in ``{index root}/{model}/{dataset}/``
(the multilingual pool, or one language with ``--lang``) that the `index`
stage built. The query is embedded before FAISS is loaded, so that torch and
FAISS do not initialise their OpenMP runtimes at the same time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlret.errors import MlretError, cli_errors
from mlret.params import load_params


def model_name(model_dir: str | Path, models_root: str | Path) -> str:
    """``models/hybrid/lowres/0`` -> ``hybrid/lowres/0``, the name stages use for the model's artifacts."""
    path, root = Path(model_dir), Path(models_root)
    parts = path.relative_to(root).parts if path.is_relative_to(root) else ()
    if not parts:
        raise MlretError(f"--model {str(model_dir)!r} is not a model folder under {str(root)!r}.", f"Pass a checkpoint folder under {root}, e.g. {root / 'hybrid/lowres/0'} (or set --models-root).")
    return "/".join(parts)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlret.search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("query", help="the question to search for, in any language")
    parser.add_argument("--model", required=True, help="a checkpoint folder under --models-root (e.g. models/base)")
    parser.add_argument("--dataset", required=True, help="an evaluated dataset, e.g. xquad-r")
    parser.add_argument("--lang", default="all", help="search one language's pool instead of all of them")
    parser.add_argument("-k", type=int, default=10, help="how many results to print")
    parser.add_argument("--models-root", default="models", help="the folder the model names are relative to (default: %(default)s)")
    parser.add_argument("--index-root", default="data/index", help="the `index` stage's output, one folder per model (default: %(default)s)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    name = model_name(args.model, args.models_root)
    index_dir = Path(args.index_root) / name / args.dataset
    index_path = index_dir / f"{args.lang}.faiss"
    if not index_path.is_file():
        raise MlretError(f"{index_path}: no index for model {name!r}, dataset {args.dataset!r}, pool {args.lang!r}.", "Run `dvc repro` to build it, and check the names.")

    from mlret.models.encoder import Encoder

    query = Encoder(args.model, params.model, show_progress=False).encode([args.query], "query")

    from mlret.artifacts import read_table
    from mlret.scoring.index import INDEX_CANDIDATE_COLUMNS, load_index, search

    index = load_index(index_path, params.index)
    candidates = read_table(index_dir / f"{args.lang}.candidates.parquet", INDEX_CANDIDATE_COLUMNS, "index")
    indices, scores = search(index, query, min(args.k, index.ntotal))
    for rank, (row, score) in enumerate(zip(indices[0], scores[0]), start=1):
        if row < 0:
            break
        hit = candidates.iloc[int(row)]
        print(f"{rank:>3}  {score:.4f}  [{hit.lang}]  {hit.text}")


if __name__ == "__main__":
    main()
