"""Stage `encode`: embed every evaluation corpus with one model (base, or strategy/profile/seed).

Several GPUs: torchrun --nproc_per_node 4 stages/encode.py --model hybrid/lowres/0
"""

import argparse

from mlret.distributed import distributed
from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.retrieval.embeddings import encode_corpora


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="`base` or `{strategy}/{profile}/{seed}` under models/")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    params = load_params()
    with distributed():
        encode_corpora(
            f"models/{args.model}",
            params.model,
            params.data.eval_sources,
            params.data.train_source,
            parallel_root="data/parallel",
            articles_path="data/splits/articles.json",
            out_dir=f"data/embeddings/{args.model}",
            batch_size=params.eval.batch_size,
            device=args.device,
            beir=params.eval.beir,
        )


if __name__ == "__main__":
    main()
