from pathlib import Path

import pytest

from conftest import paragraph_json, write_file
from mlret.data.lareqa import clean_text, read_language_file
from mlret.errors import MlretError


def one_paragraph_file(path: Path, paragraph: dict) -> Path:
    write_file(path, {"version": "1.1", "data": [{"title": "t", "paragraphs": [paragraph]}]})
    return path


def test_clean_text_strips_bom_and_collapses_whitespace() -> None:
    assert clean_text("\ufeffΤο  ποτάμι\t\n κυλά ") == "Το ποτάμι κυλά"


def test_answer_resolves_to_sentence_holding_its_start_and_flags_crossing(tmp_path: Path) -> None:
    paragraph = paragraph_json("ru", 0, 0, 3, [("inside", 1)])
    begin, end = paragraph["sentence_breaks"][1]
    # An answer starting near the end of sentence 1 that runs into sentence 2.
    crossing_start = end - 4
    paragraph["qas"].append(
        {"id": "crossing", "question": "где?", "answers": [{"answer_start": crossing_start, "text": paragraph["context"][crossing_start : crossing_start + 12]}]}
    )
    parsed = read_language_file(one_paragraph_file(tmp_path / "ru.json", paragraph), "ru")
    rows = parsed.questions.set_index("qid")
    assert rows.loc["inside", "answer_sentence"] == 1 and not rows.loc["inside", "answer_crosses_sentence"]
    assert rows.loc["crossing", "answer_sentence"] == 1 and rows.loc["crossing", "answer_crosses_sentence"]
    assert parsed.flags["answer_crosses_sentence"] == 1


def test_bom_is_stripped_from_candidates(tmp_path: Path) -> None:
    paragraph = paragraph_json("ar", 0, 0, 2, [("q", 0)], bom=True)
    parsed = read_language_file(one_paragraph_file(tmp_path / "ar.json", paragraph), "ar")
    assert "\ufeff" in paragraph["sentences"][0]
    assert parsed.sentences.text[0] == "نهر a0 p0 s0 ends here."
    assert parsed.questions.text[0] == "أين a0 p0 s0?"  # runs of spaces collapsed too


def test_truncated_json_names_file_and_position(tmp_path: Path) -> None:
    path = one_paragraph_file(tmp_path / "zh.json", paragraph_json("zh", 0, 0, 2, [("q", 0)]))
    path.write_text(path.read_text(encoding="utf-8")[:-25], encoding="utf-8")
    with pytest.raises(MlretError, match=r"zh\.json: not valid JSON \(line 1, column \d+"):
        read_language_file(path, "zh")


def test_sentences_and_breaks_disagreeing_stops_with_location(tmp_path: Path) -> None:
    paragraph = paragraph_json("en", 0, 0, 3, [("q", 0)])
    paragraph["sentence_breaks"].pop()
    path = one_paragraph_file(tmp_path / "en.json", paragraph)
    with pytest.raises(MlretError, match=r"en\.json: article 0, paragraph 0: 3 sentences but 2 sentence_breaks"):
        read_language_file(path, "en")


def test_duplicate_question_id_stops(tmp_path: Path) -> None:
    paragraph = paragraph_json("en", 0, 0, 3, [("twice", 0), ("twice", 1)])
    with pytest.raises(MlretError, match="question id twice appears twice"):
        read_language_file(one_paragraph_file(tmp_path / "en.json", paragraph), "en")


def test_answer_outside_every_sentence_is_dropped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paragraph = paragraph_json("en", 0, 0, 2, [("ok", 0), ("lost", 0)])
    paragraph["qas"][1]["answers"][0]["answer_start"] = len(paragraph["context"]) + 5
    parsed = read_language_file(one_paragraph_file(tmp_path / "en.json", paragraph), "en")
    assert parsed.questions.qid.tolist() == ["ok"]
    assert parsed.raw_question_count == 2
    assert parsed.flags["dropped_answer_outside_sentences"] == 1
    assert "question lost" in capsys.readouterr().out
