"""Article-disjoint splits of the training source and language-imbalanced training profiles.

Two decisions carry the experiment's validity:

* Splits are by *article*, never by question: translations of a question and
  questions about the same passage must not sit on both sides of train/test.
* Profiles differ only in how much data each language keeps. One seeded
  ranking of the training questions is drawn once; a language with fraction f
  keeps the first ``round(f * n)`` questions of that ranking that it has. So a
  question kept at 5% is kept at 25% (nested across profiles), low-resource
  languages share the same questions (as when one subset of a dataset is
  translated), and two runs with the same seed keep the same rows.

The dev articles are held out and listed in ``articles.json`` (with their
question count in the metrics); no table is written for them, since no stage
trains or evaluates on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlret.artifacts import read_table, write_json, write_table
from mlret.data.parallel import CANDIDATE_COLUMNS, CANDIDATE_KINDS, QUESTION_COLUMNS, QUESTION_KINDS
from mlret.errors import MlretError
from mlret.params import Profile, SplitParams

TRAIN_COLUMNS = [
    "qid",
    "lang",
    "article",
    "paragraph",
    "query",
    "positive",
    "positive_id",
    "hard_negative_ids",
]
#: What the trainer relies on beyond the columns: texts it tokenises, one row per (qid, lang).
TRAIN_KINDS: dict[str, type] = {"qid": str, "lang": str, "query": str, "positive": str, "positive_id": str}
TRAIN_KEY = ["qid", "lang"]


@dataclass(frozen=True)
class ArticleSplit:
    train: list[int]
    dev: list[int]
    test: list[int]

    def as_dict(self) -> dict[str, list[int]]:
        return {"train": self.train, "dev": self.dev, "test": self.test}


def split_articles(articles: list[int], split: SplitParams) -> ArticleSplit:
    """Shuffle the article ids once with the split seed and cut them by the fractions."""
    shuffled = list(np.random.default_rng(split.seed).permutation(sorted(articles)))
    n = len(shuffled)
    n_train = int(round(split.train * n))
    n_dev = int(round(split.dev * n)) if split.dev > 0 else 0
    if n_train == 0 or n_train + n_dev >= n:
        raise MlretError(
            f"data.split ({split.train}/{split.dev}/{split.test}) of {n} articles leaves a split empty.",
            "Adjust the fractions so that train and test each get at least one article.",
        )
    pick = lambda part: sorted(int(a) for a in part)  # noqa: E731
    return ArticleSplit(
        pick(shuffled[:n_train]), pick(shuffled[n_train : n_train + n_dev]), pick(shuffled[n_train + n_dev :])
    )


def question_ranking(qids: list[str], seed: int) -> dict[str, int]:
    """One seeded order of the training questions, shared by every language and profile."""
    ordered = sorted(set(qids))
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i]: rank for rank, i in enumerate(permutation)}


def kept_counts(questions: pd.DataFrame, profile: Profile) -> dict[str, int]:
    """How many training questions each language keeps under a profile."""
    available = questions.groupby("lang").qid.nunique()
    return {lang: int(round(profile.fraction(lang) * n)) for lang, n in available.items()}


def validate_profile(questions: pd.DataFrame, profile: Profile) -> None:
    """Fail before any work if a profile starves a language or leaves no cross-lingual pairs."""
    counts = kept_counts(questions, profile)
    starved = [lang for lang, kept in counts.items() if kept == 0 and profile.fraction(lang) > 0]
    if starved:
        detail = ", ".join(
            f"{lang} ({profile.fraction(lang)} of {questions[questions.lang == lang].qid.nunique()})"
            for lang in starved
        )
        raise MlretError(
            f"profiles.{profile.name}: keeps zero training questions for {detail}.",
            "Raise those fractions, or set them to 0 to leave the language out of training on purpose.",
        )
    if sum(1 for kept in counts.values() if kept > 0) < 2:
        raise MlretError(
            f"profiles.{profile.name}: fewer than two languages keep training data, so no cross-lingual pair exists.",
            "Keep at least two languages above zero.",
        )


def apply_profile(train_rows: pd.DataFrame, profile: Profile, ranking: dict[str, int]) -> pd.DataFrame:
    rank = train_rows.qid.map(ranking)
    keep = pd.Series(False, index=train_rows.index)
    for lang, rows in train_rows.groupby("lang"):
        n_keep = int(round(profile.fraction(str(lang)) * len(rows)))
        keep[rank[rows.index].nsmallest(n_keep).index] = True
    return train_rows[keep].reset_index(drop=True)


def training_rows(questions: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """One row per (question, language): the query, its positive sentence, and same-paragraph negatives."""
    text = candidates.set_index("candidate_id").text
    siblings = candidates.groupby(["lang", "article", "paragraph"]).candidate_id.agg(list)
    rows = questions.rename(columns={"text": "query", "answer_candidate": "positive_id"}).copy()
    rows["positive"] = rows.positive_id.map(text)
    rows["hard_negative_ids"] = [
        [c for c in siblings[(lang, article, paragraph)] if c != positive]
        for lang, article, paragraph, positive in zip(rows.lang, rows.article, rows.paragraph, rows.positive_id)
    ]
    return rows[TRAIN_COLUMNS].sort_values(["qid", "lang"], kind="stable").reset_index(drop=True)


def pair_counts(rows: pd.DataFrame) -> dict[str, int]:
    """Training pairs a profile offers: (query lang, passage lang) over the languages kept per qid."""
    per_qid = rows.groupby("qid").lang.nunique()
    return {"monolingual": int(per_qid.sum()), "cross_lingual": int((per_qid * (per_qid - 1)).sum())}


def build_splits(
    parallel_dir: str | Path,
    split: SplitParams,
    profiles: dict[str, Profile],
    out_dir: str | Path,
    metrics_path: str | Path,
) -> None:
    parallel_dir, out_dir = Path(parallel_dir), Path(out_dir)
    questions = read_table(
        parallel_dir / "questions.parquet",
        QUESTION_COLUMNS,
        "parallelise",
        kinds=QUESTION_KINDS,
        unique=["qid", "lang"],
    )
    candidates = read_table(
        parallel_dir / "candidates.parquet",
        CANDIDATE_COLUMNS,
        "parallelise",
        kinds=CANDIDATE_KINDS,
        unique=["candidate_id"],
    )
    articles = split_articles(sorted(candidates.article.unique().tolist()), split)

    train_questions = questions[questions.article.isin(articles.train)]
    for profile in profiles.values():
        validate_profile(train_questions, profile)

    all_train = training_rows(train_questions, candidates)
    ranking = question_ranking(all_train.qid.tolist(), split.seed)
    profile_metrics: dict[str, object] = {}
    for name, profile in profiles.items():
        rows = apply_profile(all_train, profile, ranking)
        write_table(out_dir / name / "train.parquet", rows)
        profile_metrics[name] = {
            "questions_per_language": {str(k): int(v) for k, v in rows.groupby("lang").qid.nunique().items()},
            "pairs": pair_counts(rows),
        }
    write_json(out_dir / "articles.json", articles.as_dict())
    write_json(
        metrics_path,
        {
            "articles": {k: len(v) for k, v in articles.as_dict().items()},
            "profiles": profile_metrics,
            "dev_questions": int(questions[questions.article.isin(articles.dev)].qid.nunique()),
            "test_questions": int(questions[questions.article.isin(articles.test)].qid.nunique()),
        },
    )
