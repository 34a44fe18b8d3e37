"""Stage `evaluate`: mono/cross/multilingual scores (and BEIR scores) of one model, from its embeddings."""

import argparse

from mlret.data.corpora import EvalCorpora, add_corpora_arguments
from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.scoring.evaluate import evaluate_model
from mlret.stop import stop_with_launcher


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_corpora_arguments(parser)
    parser.add_argument("embeddings_dir", help="this model's embeddings (data/embeddings/{model})")
    parser.add_argument("eval_dir", help="this model's per-query results (data/eval/{model})")
    parser.add_argument("metrics_path", help="this model's summary metrics (metrics/eval/{model}.json)")
    parser.add_argument(
        "--model",
        required=True,
        help="this model's path ({base}/base, or {base}/{strategy}/{profile}/{seed}): the tag of its TREC run files",
    )
    args = parser.parse_args()
    params = load_params()
    corpora = EvalCorpora.from_params(params, args.parallel_root, args.articles, args.corpora)
    with stop_with_launcher("evaluate"):
        evaluate_model(
            corpora, args.embeddings_dir, args.eval_dir, args.metrics_path, args.model, params.eval.trec_runs
        )
    print(f"evaluated {args.embeddings_dir} -> {args.metrics_path}")


if __name__ == "__main__":
    main()
