from pathlib import Path

import pytest

from conftest import paragraph_json, source_for, write_file
from mlret.data.parallel import build_parallel
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


def test_non_parallel_files_are_aligned_through_shared_question_ids(tmp_path: Path) -> None:
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
