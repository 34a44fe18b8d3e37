"""Stage `encode`: embed every evaluation corpus with one model (base, or strategy/profile/seed).

Several GPUs: torchrun --nproc_per_node 4 stages/encode.py --model hybrid/lowres/0
"""

import argparse
from pathlib import Path

from mlret.distributed import distributed
from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.retrieval.embeddings import encode_corpora


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="`base` or `{strategy}/{profile}/{seed}` under --models-root")
    parser.add_argument("--models-root", default="models")
    parser.add_argument("--parallel-root", default="data/parallel")
    parser.add_argument("--articles", default="data/splits/articles.json", help="the training source's split by article")
    parser.add_argument("--embeddings-root", default="data/embeddings")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    args = parser.parse_args()
    params = load_params()
    with distributed():
        encode_corpora(
            Path(args.models_root) / args.model,
            params.model,
            params.data.eval_sources,
            params.data.train_source,
            parallel_root=args.parallel_root,
            articles_path=args.articles,
            out_dir=Path(args.embeddings_root) / args.model,
            batch_size=params.eval.batch_size,
            device=args.device,
            beir=params.eval.beir,
        )


if __name__ == "__main__":
    main()
