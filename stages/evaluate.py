"""Stage `evaluate`: FAISS indexes and mono/cross/multilingual scores for one model."""

import argparse

from mlret.errors import cli_errors
from mlret.evaluation.evaluate import evaluate_model
from mlret.params import load_params


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="`base` or `{strategy}/{profile}/{seed}`")
    parser.add_argument("--parallel-root", default="data/parallel")
    parser.add_argument("--articles", default="data/splits/articles.json", help="the training source's split by article")
    parser.add_argument("--embeddings-root", default="data/embeddings")
    parser.add_argument("--index-root", default="data/index")
    parser.add_argument("--eval-root", default="data/eval")
    parser.add_argument("--metrics-root", default="metrics/eval")
    args = parser.parse_args()
    params = load_params()
    evaluate_model(
        args.model,
        params.data.eval_sources,
        params.data.train_source,
        params.index,
        parallel_root=args.parallel_root,
        articles_path=args.articles,
        embeddings_root=args.embeddings_root,
        index_root=args.index_root,
        eval_root=args.eval_root,
        metrics_root=args.metrics_root,
        beir=params.eval.beir,
    )


if __name__ == "__main__":
    main()
