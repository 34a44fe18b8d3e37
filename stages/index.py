"""Stage `index`: FAISS indexes of one model's candidate embeddings, per language and over each pool.

They serve `python -m mlret.search`; no reported number goes through them, so `index` params re-run only this stage.
"""

import argparse

from mlret.data.corpora import EvalCorpora, add_corpora_arguments
from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.scoring.index import index_model


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_corpora_arguments(parser)
    parser.add_argument("embeddings_dir", help="this model's embeddings (data/embeddings/{model})")
    parser.add_argument("out_dir", help="this model's indexes (data/index/{model})")
    args = parser.parse_args()
    params = load_params()
    corpora = EvalCorpora.from_params(params, args.parallel_root, args.articles, args.corpora)
    index_model(corpora, args.embeddings_dir, args.out_dir, params.index)
    print(f"indexed {len(corpora.datasets)} datasets ({params.index.type}) -> {args.out_dir}")


if __name__ == "__main__":
    main()
