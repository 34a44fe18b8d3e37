"""Stage `encode`: embed every evaluation corpus with one model (the base model, or a trained one).

Several GPUs:
torchrun --nproc_per_node 4 stages/encode.py --base e5 models/e5/hybrid/balanced/0 data/parallel \
    data/splits/articles.json data/embeddings/e5/hybrid/balanced/0
"""

import argparse

from mlret.data.corpora import EvalCorpora, add_corpora_arguments
from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.stop import stop_with_launcher


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the base model's key under `bases` in params.yaml")
    parser.add_argument(
        "checkpoint",
        help="the model's checkpoint folder (models/{base}/base, models/{base}/{strategy}/{profile}/{seed})",
    )
    add_corpora_arguments(parser)
    parser.add_argument("out_dir", help="this model's embeddings (data/embeddings/{model})")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    args = parser.parse_args()
    # torch is imported once the arguments are known, so that --help and usage errors answer at once.
    from mlret.distributed import distributed, rank_and_world
    from mlret.encoding.corpora import encode_corpora
    from mlret.models.encoder import Encoder

    params = load_params()
    corpora = EvalCorpora.from_params(params, args.parallel_root, args.articles, args.corpora)
    with stop_with_launcher("encode"), distributed():
        encoder = Encoder(
            args.checkpoint, params.model(args.base), batch_size=params.eval.batch_size, device=args.device
        )
        encoded = encode_corpora(encoder, corpora, args.out_dir)
        if rank_and_world()[0] == 0:
            print(
                f"encoded {sum(encoded.values())} texts of {len(encoded)} corpora "
                f"with {args.checkpoint} -> {args.out_dir}"
            )


if __name__ == "__main__":
    main()
