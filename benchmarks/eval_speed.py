"""How long one multilingual evaluation setting takes, and how much memory it needs.

The setting is XQuAD-R-sized: 11 languages x 1182 questions = 13,002 queries
against 13,002 candidate sentences. Embeddings are random, L2-normalised,
384-d float32, and every query has 11 relevant candidates (its answer in each
language). Cases:

* ``exact_ranks``: :func:`mlret.scoring.ranking.exact_ranks`, then mAP and
  mean rank distance. These are the exact full-pool numbers the study reports.
* ``exact_top_k``: :func:`mlret.scoring.ranking.exact_top_k`, top-100 in our
  tie order (the run the @k metrics are computed from).
* ``faiss``: FAISS ``IndexFlatIP`` top-100 (exact inner-product search).
* ``numpy_argsort``: the plain baseline. A float32 matmul per chunk, then
  ``np.argsort`` of every row, keeping the first 100.
* ``agreement`` (not timed for memory): does FAISS's top-100 equal ours, and
  do @k metrics from FAISS and from ``exact_top_k`` agree? (That
  ``exact_top_k`` and ``exact_ranks`` give identical @k metrics is a test,
  tests/scoring/test_runs.py.)

Each case runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its
own. "extra" is that peak minus the RSS once the embeddings exist. Run:
``python benchmarks/eval_speed.py``. Don't import torch here: torch and
faiss each load their own OpenMP runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_LANGS = 11
N_GROUPS = 1182  # 11 x 1182 = 13,002 queries and candidates
DIM = 384
K = 100
CHUNK = 1024
SEED = 0


def make_setting(n_groups: int = N_GROUPS, n_langs: int = N_LANGS, dim: int = DIM):
    """Queries and candidates ordered language-major (index = lang * n_groups + group), like the real pool.

    Each question has a topic direction, and each language adds a shared
    offset: a mild language bias. So the metrics come out non-trivial, not
    chance level.
    """
    rng = np.random.default_rng(SEED)

    def unit(x: np.ndarray) -> np.ndarray:
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    topics = unit(rng.standard_normal((n_groups, dim), dtype=np.float32))
    langs = unit(rng.standard_normal((n_langs, dim), dtype=np.float32))

    def side() -> np.ndarray:
        noise = unit(rng.standard_normal((n_langs, n_groups, dim), dtype=np.float32))
        return unit(topics[None] + 0.5 * langs[:, None] + 2.0 * noise).reshape(n_langs * n_groups, dim)

    queries, pool = side(), side()
    group = np.tile(np.arange(n_groups), n_langs)
    relevant = [np.arange(n_langs) * n_groups + g for g in group]
    lang = np.repeat(np.array([f"l{i:02d}" for i in range(n_langs)]), n_groups)
    return queries, pool, relevant, lang


def rss_now_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def numpy_top_k(queries: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), CHUNK):
        out[s : s + CHUNK] = np.argsort(-(queries[s : s + CHUNK] @ pool.T), axis=1)[:, :k]
    return out


def faiss_top_k(queries: np.ndarray, pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(pool)
    scores, indices = index.search(queries, k)
    return indices, scores


def run_case(name: str) -> dict:
    from mlret.scoring.measures import (
        expected_random_average_precision,
        macro_mean,
        mean_average_precision,
        mean_rank_distance,
        same_language_shares,
    )
    from mlret.scoring.ranking import exact_ranks, exact_top_k

    queries, pool, relevant, lang = make_setting()
    base = rss_now_mib()
    out: dict = {"case": name}
    t0 = time.perf_counter()
    if name == "exact_ranks":
        ranks = exact_ranks(queries, pool, relevant, chunk_size=CHUNK)
        t1 = time.perf_counter()
        out["mAP"] = mean_average_precision(ranks)
        out["rank_distance"] = mean_rank_distance(ranks)
        out["seconds_ranks"] = t1 - t0
        out["seconds_map"] = time.perf_counter() - t1
        out["chance_mAP"] = expected_random_average_precision(N_LANGS, len(pool))
    elif name == "exact_top_k":
        indices, _ = exact_top_k(queries, pool, K, chunk_size=CHUNK)
        out["same_language_share@10"] = macro_mean(same_language_shares(lang[indices[:, :10]], lang, k=10))
    elif name == "faiss":
        import faiss

        faiss_top_k(queries, pool, K)
        out["threads"] = faiss.omp_get_max_threads()
    elif name == "numpy_argsort":
        numpy_top_k(queries, pool, K)
    elif name == "agreement":
        return agreement(queries, pool, relevant)
    else:
        raise SystemExit(f"unknown case {name}")
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = peak_rss_mib()
    out["extra_rss_mib"] = out["peak_rss_mib"] - base
    return out


def agreement(queries, pool, relevant) -> dict:
    from mlret.scoring.ranking import exact_top_k
    from mlret.scoring.runs import evaluate_at_k, qrels_frame, top_k_run

    qids = [f"q{i}" for i in range(len(queries))]
    dids = [f"c{j}" for j in range(len(pool))]
    qrels = qrels_frame(qids, relevant, dids)
    ours, our_scores = exact_top_k(queries, pool, K, chunk_size=CHUNK)
    theirs, their_scores = faiss_top_k(queries, pool, K)
    same_lists = np.all(ours == theirs, axis=1)
    t0 = time.perf_counter()
    exact_run = evaluate_at_k(top_k_run(qids, ours, dids, our_scores), qrels)
    seconds_eval = time.perf_counter() - t0
    faiss_run = evaluate_at_k(top_k_run(qids, theirs, dids, their_scores), qrels)
    differs = (faiss_run.per_query != exact_run.per_query).any(axis=1)
    return {
        "case": "agreement",
        "queries_with_identical_top100": float(same_lists.mean()),
        "positions_differing": float((ours != theirs).mean()),
        "max_abs_score_diff_faiss_vs_ours": float(np.max(np.abs(their_scores - our_scores)[ours == theirs])),
        "queries_whose_at_k_metrics_differ_faiss_vs_exact": int(differs.sum()),
        "max_abs_mean_diff_faiss_vs_exact": max(abs(faiss_run.mean[m] - exact_run.mean[m]) for m in exact_run.mean),
        "mean_at_k_exact": exact_run.mean,
        "seconds_evaluate_at_k": seconds_eval,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", help="run one case in this process and print JSON (used internally)")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    import faiss
    import threadpoolctl

    blas = [(p["internal_api"], p["num_threads"]) for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    n = N_LANGS * N_GROUPS
    print(f"{n} queries x {n} candidates, {DIM}-d float32, {N_LANGS} relevant each, top-{K}, chunk {CHUNK}")
    print(f"cpus={os.cpu_count()} numpy={np.__version__} blas={blas} faiss={faiss.__version__}")
    results = {}
    for case in ("exact_ranks", "exact_top_k", "faiss", "numpy_argsort", "agreement"):
        proc = subprocess.run([sys.executable, __file__, "--case", case], capture_output=True, text=True, check=True)
        results[case] = json.loads(proc.stdout.strip().splitlines()[-1])
    for case in ("exact_ranks", "exact_top_k", "faiss", "numpy_argsort"):
        r = results[case]
        extra = {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in r.items()
            if k not in {"case", "seconds", "peak_rss_mib", "extra_rss_mib"}
        }
        memory = f"peak RSS {r['peak_rss_mib']:7.0f} MiB (extra {r['extra_rss_mib']:6.0f} MiB)"
        print(f"{case:14s} {r['seconds']:7.2f} s   {memory}   {extra}")
    ratio = results["numpy_argsort"]["seconds"] / results["faiss"]["seconds"]
    print(f"numpy argsort / faiss IndexFlatIP wall-time ratio: {ratio:.1f}x")
    print("agreement:", json.dumps(results["agreement"], indent=1))


if __name__ == "__main__":
    main()
