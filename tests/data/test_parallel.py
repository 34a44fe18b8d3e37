import json
from pathlib import Path

import pytest

from mlret.artifacts import read_json, read_table
from mlret.data.parallel import FLAGS, QUESTION_COLUMNS, build_parallel, parallelise_all
from mlret.errors import MlretError


def test_candidates_and_questions_align_across_languages(tiny_xquad) -> None:
    root, source = tiny_xquad
    data = build_parallel(source, root / source.name)
    assert data.candidates.candidate_id.is_unique
    assert len(data.candidates) == 3 * 6 * 2 * 3
    # Every qid exists in all three languages with the same language-independent position.
    per_qid = data.questions.groupby("qid")
    assert (per_qid.lang.nunique() == 3).all()
    assert (per_qid.article.nunique() == 1).all() and (per_qid.paragraph.nunique() == 1).all()
    # The answer candidate of a question is the sentence its answer starts in, in that language.
    text = data.candidates.set_index("candidate_id").text
    row = data.questions[(data.questions.qid == "q4-1-1") & (data.questions.lang == "zh")].iloc[0]
    assert text[row.answer_candidate] == "河流 a4 p1 s1 ends here."
    assert data.counts["ru"]["questions"] == 24 and data.counts["ru"]["candidates"] == 36


def test_non_parallel_files_are_aligned_through_shared_question_ids(
    tmp_path: Path, paragraph_json, write_file, source_for
) -> None:
    """MLQA-R-like: each language orders its articles differently and holds a subset of questions."""
    en = [
        {"title": "A", "paragraphs": [paragraph_json("en", 0, 0, 2, [("qa", 0)])]},
        {"title": "B", "paragraphs": [paragraph_json("en", 1, 0, 2, [("qb", 1), ("qc", 0)])]},
    ]
    # Hindi holds article B first, then A, and lacks question qc.
    hi = [
        {"title": "B", "paragraphs": [paragraph_json("hi", 0, 0, 3, [("qb", 2)])]},
        {"title": "A", "paragraphs": [paragraph_json("hi", 1, 0, 2, [("qa", 1)])]},
    ]
    write_file(tmp_path / "m" / "en.json", {"data": en})
    write_file(tmp_path / "m" / "hi.json", {"data": hi})
    data = build_parallel(source_for(tmp_path, "m", ["en", "hi"]), tmp_path / "m")
    q = data.questions.set_index(["qid", "lang"])
    assert q.loc[("qb", "en"), "article"] == q.loc[("qb", "hi"), "article"] == 1
    assert q.loc[("qa", "en"), "article"] == q.loc[("qa", "hi"), "article"] == 0
    assert q.loc[("qb", "hi"), "answer_candidate"] == "hi:0:0:2"
    assert ("qc", "hi") not in q.index
    hindi_b = data.candidates[(data.candidates.lang == "hi") & (data.candidates.article == 1)]
    assert len(hindi_b) == 3


def test_count_mismatch_with_published_release_fails_loudly(tiny_xquad) -> None:
    root, source = tiny_xquad
    wrong = type(source)(source.name, source.url, source.sha256, {**source.expected_questions, "ru": 1190})
    with pytest.raises(MlretError, match=r"ru: 24 \(expected 1190\)"):
        build_parallel(wrong, root / source.name)


# ---------------------------------------------------------------------------
# Question ids filed under another article in one language.


@pytest.fixture
def move_question(write_file):
    """Moves question ``qid`` to the same paragraph position of another article of its file (its offsets stay valid)."""

    def move(path: Path, qid: str, to_article: int) -> None:
        payload = json.loads(path.read_text(encoding="utf-8"))
        for article in payload["data"]:
            for p, paragraph in enumerate(article["paragraphs"]):
                for qa in list(paragraph["qas"]):
                    if qa["id"] == qid:
                        paragraph["qas"].remove(qa)
                        payload["data"][to_article]["paragraphs"][p]["qas"].append(qa)
                        write_file(path, payload)
                        return
        raise AssertionError(f"{qid} not found")

    return move


def test_a_single_moved_question_does_not_merge_two_articles(
    tiny_xquad, caplog: pytest.LogCaptureFixture, source_for, move_question
) -> None:
    root, source = tiny_xquad
    move_question(root / source.name / "ru.json", "q1-0-0", to_article=2)
    data = build_parallel(source_for(root, source.name, ["en", "ru", "zh"]), root / source.name)
    assert data.candidates.article.nunique() == 6 and data.article_merges == {}
    assert "q1-0-0" not in set(data.questions.qid)
    assert {lang: c["dropped_article_conflict"] for lang, c in data.counts.items()} == {"en": 1, "ru": 1, "zh": 1}
    assert {lang: c["questions"] for lang, c in data.counts.items()} == {"en": 23, "ru": 23, "zh": 23}
    # Every remaining question keeps one article across languages, and each file article stays its own article.
    assert (data.questions.groupby("qid").article.nunique() == 1).all()
    assert (data.candidates.groupby("paragraph").article.nunique() == 1).all()
    assert data.candidates.paragraph.nunique() == 6 * 2
    assert (
        data.candidates.groupby("article").candidate_id.apply(
            lambda c: c.str.split(":").str[:2].str.join(":").nunique()
        )
        == 3
    ).all()
    assert "question q1-0-0: the only question id linking its articles" in caplog.text
    assert "ru file article 2" in caplog.text and "en file article 1" in caplog.text


def test_articles_linked_by_two_question_ids_merge_and_are_reported(
    tiny_xquad, tmp_path: Path, caplog: pytest.LogCaptureFixture, source_for, move_question
) -> None:
    root, source = tiny_xquad
    for qid in ("q1-0-0", "q1-0-1"):
        move_question(root / source.name / "ru.json", qid, to_article=2)
    moved = source_for(root, source.name, ["en", "ru", "zh"])
    data = build_parallel(moved, root / source.name)
    parallelise_all({source.name: moved}, root, tmp_path / "parallel", tmp_path / "data.json")
    assert read_json(tmp_path / "data.json")[source.name]["article_merges"] == 1
    assert data.candidates.article.nunique() == 5
    assert data.article_merges == {1: {"en": [1, 2], "ru": [1, 2], "zh": [1, 2]}}
    assert {lang: c["questions"] for lang, c in data.counts.items()} == {"en": 24, "ru": 24, "zh": 24}
    assert (data.questions.groupby("qid").article.nunique() == 1).all()
    assert (
        "article 1 merges several articles of one language "
        "(en file articles 1, 2; ru file articles 1, 2; zh file articles 1, 2)" in caplog.text
    )


# ---------------------------------------------------------------------------
# Every data row of the bad-input table, through to metrics/data.json.


def test_every_bad_input_count_reaches_the_metrics(
    tiny_xquad, tmp_path: Path, caplog: pytest.LogCaptureFixture, write_file, source_for, move_question
) -> None:
    root, source = tiny_xquad
    folder = root / source.name
    files = {lang: json.loads((folder / f"{lang}.json").read_text(encoding="utf-8")) for lang in ("en", "ru", "zh")}
    paragraph = lambda lang, a, p: files[lang]["data"][a]["paragraphs"][p]  # noqa: E731
    # en: a question without answer; a sentence whose text differs from its context span.
    paragraph("en", 0, 0)["qas"][0]["answers"] = []
    paragraph("en", 2, 0)["sentences"][2] = paragraph("en", 2, 0)["sentences"][2].replace("ends", "stops")
    # ru: an answer starting past the context; two swapped breaks of equal length with answers naming their sentence.
    paragraph("ru", 0, 0)["qas"][1]["answers"][0]["answer_start"] = len(paragraph("ru", 0, 0)["context"]) + 5
    swapped = paragraph("ru", 3, 0)
    for qa in swapped["qas"]:
        start = qa["answers"][0]["answer_start"]
        qa["answers"][0]["text"] = swapped["context"][start : start + 8]  # "a3 p0 s0", "a3 p0 s1"
    swapped["sentence_breaks"][0], swapped["sentence_breaks"][1] = (
        swapped["sentence_breaks"][1],
        swapped["sentence_breaks"][0],
    )
    # zh: an answer that runs into the next sentence.
    crossing = paragraph("zh", 0, 1)
    start = crossing["qas"][0]["answers"][0]["answer_start"]
    crossing["qas"][0]["answers"][0]["text"] = crossing["context"][start : crossing["sentence_breaks"][0][1] + 5]
    for lang, payload in files.items():
        write_file(folder / f"{lang}.json", payload)
    # zh: a question filed under the next article.
    move_question(folder / "zh.json", "q4-0-0", to_article=5)

    parallelise_all(
        {source.name: source_for(root, source.name, ["en", "ru", "zh"])},
        root,
        tmp_path / "parallel",
        tmp_path / "data.json",
    )
    metrics = read_json(tmp_path / "data.json")[source.name]
    counts = metrics["languages"]
    expected = {
        "en": {"dropped_no_answer": 1, "sentence_text_mismatch": 1, "dropped_article_conflict": 1, "questions": 22},
        "ru": {
            "dropped_answer_outside_sentences": 1,
            "dropped_answer_not_in_sentence": 2,
            "sentence_text_mismatch": 2,
            "dropped_article_conflict": 1,
            "questions": 20,
        },
        "zh": {"answer_crosses_sentence": 1, "dropped_article_conflict": 1, "questions": 23},
    }
    zero = dict.fromkeys(FLAGS, 0)
    for lang, want in expected.items():
        assert counts[lang] == {**zero, "candidates": 36, **want}, lang
    assert metrics["article_merges"] == 0 and metrics["articles"] == 6
    questions = read_table(tmp_path / "parallel" / source.name / "questions.parquet", QUESTION_COLUMNS, "parallelise")
    assert len(questions) == 22 + 20 + 23
    assert questions.set_index(["qid", "lang"]).loc[("q0-1-0", "zh"), "answer_crosses_sentence"]
    for qid in ("q0-0-0", "q0-0-1", "q3-0-0", "q3-0-1", "q4-0-0"):
        assert f"question {qid}:" in caplog.text


def test_a_file_that_must_stop_writes_no_metrics(tiny_xquad, tmp_path: Path) -> None:
    root, source = tiny_xquad
    path = root / source.name / "ru.json"
    path.write_text(path.read_text(encoding="utf-8")[:-40], encoding="utf-8")
    with pytest.raises(MlretError, match=r"ru\.json: not valid JSON"):
        parallelise_all({source.name: source}, root, tmp_path / "parallel", tmp_path / "data.json")
    assert not (tmp_path / "data.json").exists()
