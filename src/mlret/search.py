r"""Search a saved index with a trained model: the models are meant to be used, not only scored.

    mlret search --model models/e5/hybrid/balanced/0 --dataset xquad-r \
        "Where does the Middle Rhine flow between Bingen and Bonn?"
    mlret search --model models/e5/base --dataset mlqa-r --queries questions.tsv --json

Queries are encoded with the model's own settings (query prefix, pooling,
length, normalisation), read from its folder's sentence-transformers files,
so a model is searched as it was evaluated even after params.yaml changed;
a folder without them falls back to its base model's settings under `bases` in params.yaml, with a
warning. They are looked up in ``{index root}/{model}/{dataset}/`` (the
multilingual pool, or one language with ``--lang``) that the `index` stage
built. Queries are embedded before FAISS is loaded, so that torch and FAISS
do not initialise their OpenMP runtimes at the same time.

The index holds what the model was evaluated on: for the training source
(``data.train_source``) its test articles only (XQuAD-R: 14 of 48 articles, so
a question about a training article finds no answer), for every other dataset
its full pool. A line on stderr says which. Candidates that are punctuation or
one character (``و.``, ``I.``, ``2).``: sentence splits of the LAReQA release)
are kept, as evaluation keeps them, and marked in the output.

``--queries FILE`` reads one query per line (ids are line numbers), or
``id<TAB>text`` lines (ids as given). ``--json`` prints one JSON object per
hit: query_id, query, rank, score, lang, candidate_id, text, degenerate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import unicodedata
from pathlib import Path

from mlret.errors import MlretError, cli_errors
from mlret.models.export import read_model_settings
from mlret.params import ModelParams, load_params
from mlret.vocabulary import BASE, stage_of

log = logging.getLogger(__name__)


def model_name(model_dir: str | Path, models_root: str | Path) -> str:
    """``models/e5/hybrid/balanced/0`` -> ``e5/hybrid/balanced/0``, the path stages use for the model's artifacts."""
    path, root = Path(model_dir), Path(models_root)
    parts = path.relative_to(root).parts if path.is_relative_to(root) else ()
    if not parts:
        raise MlretError(
            f"--model {str(model_dir)!r} is not a model folder under {str(root)!r}.",
            f"Pass a checkpoint folder under {root}, e.g. {root / 'e5' / BASE} or {root / 'e5/hybrid/balanced/0'} "
            "(or set --models-root).",
        )
    return "/".join(parts)


def read_queries(path: str | Path) -> list[tuple[str, str]]:
    """(query id, text) pairs of a query file: plain lines (id = line number) or ``id<TAB>text`` lines.

    The first non-blank line decides the format; blank lines are skipped. A
    TSV line without a tab, an empty text or a repeated id is an error rather
    than a query silently lost or merged.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise MlretError(
            f"--queries {path}: file not found.", "Pass a text file with one query per line, or `id<TAB>text` lines."
        ) from None
    except UnicodeDecodeError:
        raise MlretError(f"--queries {path}: not UTF-8 text.", "Save the query file as UTF-8.") from None
    numbered = [(n, line.rstrip("\r")) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise MlretError(
            f"--queries {path}: no queries in the file.", "Write one query per line, or `id<TAB>text` lines."
        )
    tsv = "\t" in numbered[0][1]
    queries: list[tuple[str, str]] = []
    for n, line in numbered:
        if not tsv:
            queries.append((str(n), line.strip()))
            continue
        qid, tab, text = line.partition("\t")
        if not tab or not qid.strip() or not text.strip():
            raise MlretError(
                f"--queries {path}, line {n}: not `id<TAB>text` ({line!r}).",
                "Give every line an id, a tab and the query (the first line has a tab, so the file is read as TSV).",
            )
        queries.append((qid.strip(), text.strip()))
    seen: set[str] = set()
    for qid, _ in queries:
        if qid in seen:
            raise MlretError(
                f"--queries {path}: query id {qid!r} appears more than once.", "Give each query its own id."
            )
        seen.add(qid)
    return queries


def is_degenerate(text: str) -> bool:
    """Punctuation (and spaces) around at most one character: a sentence split, not an answer a reader can use."""
    return sum(1 for ch in text if not (ch.isspace() or unicodedata.category(ch).startswith("P"))) <= 1


def model_settings(model_dir: str | Path, fallback: ModelParams) -> ModelParams:
    """How the model in ``model_dir`` encodes: its own files, else ``fallback`` (params.yaml) with a warning."""
    own = read_model_settings(model_dir)
    if own is not None:
        return own
    log.warning(
        "%s has no sentence-transformers settings (modules.json); encoding queries as params.yaml's `bases` entry "
        "says, which may not be how this model was indexed. Re-run `dvc repro` to re-save the model with its settings.",
        model_dir,
    )
    return fallback


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mlret search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("query", nargs="?", help="the question to search for, in any language (or use --queries)")
    parser.add_argument("--queries", metavar="FILE", help="a file of queries: one per line, or `id<TAB>text` lines")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON lines (query_id, query, rank, score, lang, candidate_id, text, degenerate)",
    )
    parser.add_argument("--model", required=True, help="a checkpoint folder under --models-root (e.g. models/e5/base)")
    parser.add_argument(
        "--dataset",
        required=True,
        help="an evaluated dataset, e.g. xquad-r (its test articles only) or mlqa-r (its full pool)",
    )
    parser.add_argument("--lang", default="all", help="search one language's pool instead of all of them")
    parser.add_argument("-k", type=int, default=10, help="how many results to print per query")
    parser.add_argument(
        "--models-root", default="models", help="the folder the model names are relative to (default: %(default)s)"
    )
    parser.add_argument(
        "--index-root",
        default="data/index",
        help="the `index` stage's output, one folder per model (default: %(default)s)",
    )
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="the params file whose `index` section (and, for a model folder without its own settings, its base "
        "under `bases`) applies (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    if (args.query is None) == (args.queries is None):
        raise MlretError(
            "give either a query or --queries FILE (exactly one of them).",
            "e.g. mlret search --model models/e5/base --dataset xquad-r "
            '"Where does the Middle Rhine flow between Bingen and Bonn?"',
        )
    if args.query is not None and not args.query.strip():
        raise MlretError(
            "the query is empty.",
            'Pass the question to search for, e.g. "Where does the Middle Rhine flow between Bingen and Bonn?".',
        )
    if args.k < 1:
        raise MlretError(f"-k {args.k}: must be at least 1.", "Pass how many results to print per query, e.g. -k 10.")
    queries = [("1", args.query)] if args.queries is None else read_queries(args.queries)
    params = load_params(args.params)
    name = model_name(args.model, args.models_root)
    index_dir = Path(args.index_root) / name / args.dataset
    index_path = index_dir / f"{args.lang}.faiss"
    if not index_path.is_file():
        datasets = [*params.data.eval_sources, *params.eval.beir]
        if args.dataset not in datasets:
            raise MlretError(
                f"{index_path}: no index, and {args.dataset!r} is not a dataset of {args.params}.",
                f"Pick one of {datasets} (data.sources and eval.beir).",
            )
        base, _, model = name.partition("/")
        known = [f"{key}/{BASE}" for key in params.bases] + [run.id.path for run in params.runs]
        if name not in known:
            raise MlretError(
                f"{index_path}: no index, and {name!r} is neither a base model's `{{base}}/{BASE}` nor a run of "
                f"{args.params}.",
                f"Pick one of {', '.join(known)}.",
            )
        raise MlretError(
            f"{index_path}: no index for model {name!r}, dataset {args.dataset!r}, pool {args.lang!r}.",
            f"Build it with `dvc repro {stage_of(model, 'index', base)}` (a run with `corpora: in_domain` is indexed "
            "on the training source only); --lang takes a language of the dataset or `all`.",
        )

    from mlret.models.encoder import Encoder

    settings = model_settings(args.model, params.model(name.partition("/")[0]))
    vectors = Encoder(args.model, settings, show_progress=False).encode([text for _, text in queries], "query")

    from mlret.scoring.index import load_pool, search

    index, candidates = load_pool(index_dir, args.lang, params.index)
    degenerate = candidates.text.map(is_degenerate)
    pool = "its test articles only (in-domain)" if args.dataset == params.data.train_source else "its full pool"
    print(
        f"{args.dataset}, {args.lang}: {len(candidates)} candidates, {pool}; {int(degenerate.sum())} are punctuation "
        "or one character (kept, as in evaluation; marked)",
        file=sys.stderr,
    )
    indices, scores = search(index, vectors, min(args.k, index.ntotal))
    for q, (qid, text) in enumerate(queries):
        if args.queries is not None and not args.json:
            print(f"{'' if q == 0 else chr(10)}query {qid}: {text}")
        for rank, (row, score) in enumerate(zip(indices[q], scores[q]), start=1):
            if row < 0:
                break
            hit = candidates.iloc[int(row)]
            if args.json:
                record = {
                    "query_id": qid,
                    "query": text,
                    "rank": rank,
                    "score": float(score),
                    "lang": str(hit.lang),
                    "candidate_id": str(hit.candidate_id),
                    "text": str(hit.text),
                    "degenerate": bool(degenerate.iloc[int(row)]),
                }
                print(json.dumps(record, ensure_ascii=False))
            else:
                mark = "  (punctuation or one character)" if degenerate.iloc[int(row)] else ""
                print(f"{rank:>3}  {score:.4f}  [{hit.lang}]  {hit.text}{mark}")


if __name__ == "__main__":
    main()
