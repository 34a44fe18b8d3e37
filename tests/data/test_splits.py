from pathlib import Path

import pandas as pd
import pytest

from mlret.artifacts import read_json, write_table
from mlret.data.parallel import build_parallel
from mlret.data.splits import (
    apply_profile,
    build_splits,
    question_ranking,
    split_articles,
    training_rows,
    validate_profile,
)
from mlret.errors import MlretError
from mlret.params import Profile, SplitParams

SPLIT = SplitParams(train=0.5, dev=1 / 6, test=1 / 3, seed=7)


@pytest.fixture
def parallel_dir(tiny_xquad, tmp_path: Path) -> Path:
    root, source = tiny_xquad
    data = build_parallel(source, root / source.name)
    out = tmp_path / "parallel"
    write_table(out / "candidates.parquet", data.candidates)
    write_table(out / "questions.parquet", data.questions)
    return out


def test_article_split_is_disjoint_complete_and_seeded() -> None:
    split = split_articles(list(range(48)), SplitParams(0.6, 0.1, 0.3, seed=13))
    parts = [set(split.train), set(split.dev), set(split.test)]
    assert [len(p) for p in parts] == [29, 5, 14]
    assert set().union(*parts) == set(range(48)) and sum(map(len, parts)) == 48
    assert split == split_articles(list(range(48)), SplitParams(0.6, 0.1, 0.3, seed=13))
    assert split != split_articles(list(range(48)), SplitParams(0.6, 0.1, 0.3, seed=14))


def test_profiles_are_nested_across_fractions_and_languages(parallel_dir: Path) -> None:
    questions = pd.read_parquet(parallel_dir / "questions.parquet")
    candidates = pd.read_parquet(parallel_dir / "candidates.parquet")
    rows = training_rows(questions, candidates)
    ranking = question_ranking(rows.qid.tolist(), seed=3)
    kept = {f: apply_profile(rows, Profile("p", 1.0, {"ru": f, "zh": f}), ranking) for f in (0.25, 0.5, 1.0)}
    for lang in ("ru", "zh"):
        small, medium, full = (set(kept[f][kept[f].lang == lang].qid) for f in (0.25, 0.5, 1.0))
        assert len(small) == 6 and len(medium) == 12 and len(full) == 24
        assert small < medium < full
    # Low-resource languages keep the same questions (one shared ranking).
    k = kept[0.25]
    assert set(k[k.lang == "ru"].qid) == set(k[k.lang == "zh"].qid)
    assert (kept[0.25][kept[0.25].lang == "en"].qid.nunique()) == 24


def test_training_rows_carry_positive_and_same_paragraph_negatives(parallel_dir: Path) -> None:
    questions = pd.read_parquet(parallel_dir / "questions.parquet")
    candidates = pd.read_parquet(parallel_dir / "candidates.parquet")
    row = training_rows(questions, candidates).set_index(["qid", "lang"]).loc[("q2-1-1", "ru")]
    assert row.query == "где a2 p1 s1?"
    assert row.positive == "река a2 p1 s1 ends here." and row.positive_id == "ru:2:1:1"
    assert sorted(row.hard_negative_ids) == ["ru:2:1:0", "ru:2:1:2"]


def test_build_splits_outputs_are_article_disjoint_and_deterministic(parallel_dir: Path, tmp_path: Path) -> None:
    profiles = {"balanced": Profile("balanced", 1.0), "lowres": Profile("lowres", 1.0, {"zh": 0.25})}
    outputs = []
    for run in ("a", "b"):
        build_splits(parallel_dir, SPLIT, profiles, tmp_path / run, tmp_path / run / "metrics.json")
        outputs.append(tmp_path / run)
    articles = read_json(outputs[0] / "articles.json")
    assert not set(articles["train"]) & set(articles["test"]) and not set(articles["dev"]) & set(articles["test"])
    train = pd.read_parquet(outputs[0] / "balanced" / "train.parquet")
    assert set(train.article) == set(articles["train"])
    written = sorted(p.relative_to(outputs[0]).as_posix() for p in outputs[0].rglob("*") if p.is_file())
    assert written == ["articles.json", "balanced/train.parquet", "lowres/train.parquet", "metrics.json"]
    for name in written:
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes()
    metrics = read_json(outputs[0] / "metrics.json")
    # 6 articles of 4 questions: train 3, dev 1, test 2 (fractions 1/2, 1/6, 1/3).
    assert metrics["articles"] == {"train": 3, "dev": 1, "test": 2}
    assert (metrics["dev_questions"], metrics["test_questions"]) == (4, 8)
    assert metrics["profiles"]["lowres"]["questions_per_language"] == {"en": 12, "ru": 12, "zh": 3}
    # 3 qids with 3 languages, 9 with 2: mono 3*3 + 9*2 = 27, cross 3*6 + 9*2 = 36.
    assert metrics["profiles"]["lowres"]["pairs"] == {"monolingual": 27, "cross_lingual": 36}


def test_profile_that_starves_a_language_fails_before_any_work(parallel_dir: Path, tmp_path: Path) -> None:
    profiles = {"tiny": Profile("tiny", 1.0, {"ru": 0.01})}
    with pytest.raises(MlretError, match=r"profiles.tiny: keeps zero training questions for ru"):
        build_splits(parallel_dir, SPLIT, profiles, tmp_path / "out", tmp_path / "m.json")
    assert not (tmp_path / "out").exists()


def test_profile_with_a_single_language_has_no_cross_pairs() -> None:
    questions = pd.DataFrame({"qid": ["a", "a"], "lang": ["en", "ru"]})
    with pytest.raises(MlretError, match="fewer than two languages"):
        validate_profile(questions, Profile("mono-only", 0.0, {"en": 1.0}))


def _flip_a_byte_of(path: Path, text: str) -> None:
    """Corrupt one character of ``text`` in an uncompressed Parquet file, as a bad disk or copy would."""
    data = bytearray(path.read_bytes())
    at = data.find(text.encode("utf-8"))
    assert at >= 0
    data[at] = 0xFF
    path.write_bytes(bytes(data))


def _edited(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    if kind == "no rows":
        return frame.iloc[:0]
    if kind == "null text":
        return frame.assign(text=frame.text.where(frame.index != 3, None))
    if kind == "string article":
        return frame.assign(article=frame.article.astype(str))
    return pd.concat([frame, frame.iloc[[5]]], ignore_index=True)  # "repeated row"


@pytest.mark.parametrize(
    ("table", "kind", "message"),
    [
        ("questions", "no rows", "the table has no rows"),
        ("questions", "null text", "column 'text' has 1 missing (null) value(s)"),
        ("questions", "string article", "column 'article' should hold integers, but holds str"),
        ("candidates", "repeated row", "the row with candidate_id = 'en:0:1:2' appears more than once"),
        ("candidates", "null text", "column 'text' has 1 missing (null) value(s)"),
    ],
)
def test_a_bad_parallel_table_is_blamed_on_its_file_not_on_params(
    parallel_dir: Path, tmp_path: Path, table: str, kind: str, message: str
) -> None:
    """A zero-row table or a string `article` column used to read as "fewer than two languages keep training data"."""
    path = parallel_dir / f"{table}.parquet"
    write_table(path, _edited(pd.read_parquet(path), kind))
    with pytest.raises(MlretError) as caught:
        build_splits(parallel_dir, SPLIT, {"all": Profile("all")}, tmp_path / "splits", tmp_path / "m.json")
    assert caught.value.what == f"{path}: {message}." and "dvc repro parallelise" in caught.value.fix
    assert not (tmp_path / "splits").exists()


def test_a_flipped_byte_in_the_questions_stops_split(parallel_dir: Path, tmp_path: Path) -> None:
    """Invalid UTF-8 used to pass split and reach train.parquet."""
    path = parallel_dir / "questions.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(path), path, compression="none")  # so that the text is in the file as written
    _flip_a_byte_of(path, "где")
    with pytest.raises(MlretError, match=r"column 'text' is damaged \(.*UTF8"):
        build_splits(parallel_dir, SPLIT, {"all": Profile("all")}, tmp_path / "splits", tmp_path / "m.json")
    assert not (tmp_path / "splits").exists()
