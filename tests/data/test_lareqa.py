import json
from pathlib import Path

import pytest

from mlret.data.lareqa import clean_text, read_language_file
from mlret.errors import MlretError


@pytest.fixture
def one_paragraph_file(write_file):
    """Writes a one-article, one-paragraph language file and returns its path."""

    def write(path: Path, paragraph: dict) -> Path:
        write_file(path, {"version": "1.1", "data": [{"title": "t", "paragraphs": [paragraph]}]})
        return path

    return write


def test_clean_text_strips_bom_and_collapses_whitespace() -> None:
    assert clean_text("\ufeffΤο  ποτάμι\t\n κυλά ") == "Το ποτάμι κυλά"


def test_answer_resolves_to_sentence_holding_its_start_and_flags_crossing(
    tmp_path: Path, paragraph_json, one_paragraph_file
) -> None:
    paragraph = paragraph_json("ru", 0, 0, 3, [("inside", 1)])
    _, end = paragraph["sentence_breaks"][1]
    # An answer starting near the end of sentence 1 that runs into sentence 2.
    crossing_start = end - 4
    paragraph["qas"].append(
        {
            "id": "crossing",
            "question": "где?",
            "answers": [
                {"answer_start": crossing_start, "text": paragraph["context"][crossing_start : crossing_start + 12]}
            ],
        }
    )
    parsed = read_language_file(one_paragraph_file(tmp_path / "ru.json", paragraph), "ru")
    rows = parsed.questions.set_index("qid")
    assert rows.loc["inside", "answer_sentence"] == 1 and not rows.loc["inside", "answer_crosses_sentence"]
    assert rows.loc["crossing", "answer_sentence"] == 1 and rows.loc["crossing", "answer_crosses_sentence"]
    assert parsed.flags["answer_crosses_sentence"] == 1


def test_bom_is_stripped_from_candidates(tmp_path: Path, paragraph_json, one_paragraph_file) -> None:
    paragraph = paragraph_json("ar", 0, 0, 2, [("q", 0)], bom=True)
    parsed = read_language_file(one_paragraph_file(tmp_path / "ar.json", paragraph), "ar")
    assert "\ufeff" in paragraph["sentences"][0]
    assert parsed.sentences.text[0] == "نهر a0 p0 s0 ends here."
    assert parsed.questions.text[0] == "أين a0 p0 s0?"  # runs of spaces collapsed too


def test_truncated_json_names_file_and_position(tmp_path: Path, paragraph_json, one_paragraph_file) -> None:
    path = one_paragraph_file(tmp_path / "zh.json", paragraph_json("zh", 0, 0, 2, [("q", 0)]))
    path.write_text(path.read_text(encoding="utf-8")[:-25], encoding="utf-8")
    with pytest.raises(MlretError, match=r"zh\.json: not valid JSON \(line 1, column \d+"):
        read_language_file(path, "zh")


def test_sentences_and_breaks_disagreeing_stops_with_location(
    tmp_path: Path, paragraph_json, one_paragraph_file
) -> None:
    paragraph = paragraph_json("en", 0, 0, 3, [("q", 0)])
    paragraph["sentence_breaks"].pop()
    path = one_paragraph_file(tmp_path / "en.json", paragraph)
    with pytest.raises(MlretError, match=r"en\.json: article 0, paragraph 0: 3 sentences but 2 sentence_breaks"):
        read_language_file(path, "en")


def test_duplicate_question_id_stops(tmp_path: Path, paragraph_json, one_paragraph_file) -> None:
    paragraph = paragraph_json("en", 0, 0, 3, [("twice", 0), ("twice", 1)])
    with pytest.raises(MlretError, match="question id twice appears twice"):
        read_language_file(one_paragraph_file(tmp_path / "en.json", paragraph), "en")


def test_answer_outside_every_sentence_is_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, paragraph_json, one_paragraph_file
) -> None:
    paragraph = paragraph_json("en", 0, 0, 2, [("ok", 0), ("lost", 0)])
    paragraph["qas"][1]["answers"][0]["answer_start"] = len(paragraph["context"]) + 5
    parsed = read_language_file(one_paragraph_file(tmp_path / "en.json", paragraph), "en")
    assert parsed.questions.qid.tolist() == ["ok"]
    assert parsed.raw_question_count == 2
    assert parsed.flags["dropped_answer_outside_sentences"] == 1
    assert "question lost: answer start" in caplog.text


@pytest.mark.parametrize("missing", ["sentences", "sentence_breaks", "context", "qas"])
def test_missing_paragraph_field_stops_with_file_and_location(
    tmp_path: Path, missing: str, paragraph_json, one_paragraph_file
) -> None:
    paragraph = paragraph_json("el", 0, 0, 2, [("q", 0)])
    del paragraph[missing]
    path = one_paragraph_file(tmp_path / "el.json", paragraph)
    with pytest.raises(MlretError, match=rf"el\.json: article 0, paragraph 0: field `{missing}` is missing"):
        read_language_file(path, "el")


def test_missing_answer_start_stops_naming_the_question(tmp_path: Path, paragraph_json, one_paragraph_file) -> None:
    paragraph = paragraph_json("el", 0, 0, 2, [("q7", 0)])
    del paragraph["qas"][0]["answers"][0]["answer_start"]
    with pytest.raises(MlretError, match=r"article 0, paragraph 0, question q7: field `answer_start` is missing"):
        read_language_file(one_paragraph_file(tmp_path / "el.json", paragraph), "el")


def test_missing_top_level_data_stops(tmp_path: Path, write_file) -> None:
    write_file(tmp_path / "hi.json", {"version": "1.1"})
    with pytest.raises(MlretError, match=r"hi\.json: field `data` is missing"):
        read_language_file(tmp_path / "hi.json", "hi")


def test_duplicate_question_id_names_both_locations(tmp_path: Path, paragraph_json, write_file) -> None:
    articles = [
        {"title": "a", "paragraphs": [paragraph_json("ru", 0, 0, 2, [("twice", 0)])]},
        {
            "title": "b",
            "paragraphs": [paragraph_json("ru", 1, 0, 2, []), paragraph_json("ru", 1, 1, 2, [("twice", 1)])],
        },
    ]
    write_file(tmp_path / "ru.json", {"data": articles})
    with pytest.raises(
        MlretError,
        match=r"article 1, paragraph 1: question id twice appears twice in this file "
        r"\(first at article 0, paragraph 0\)",
    ):
        read_language_file(tmp_path / "ru.json", "ru")


def test_question_without_answer_is_dropped_counted_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, paragraph_json, one_paragraph_file
) -> None:
    paragraph = paragraph_json("zh", 0, 0, 2, [("ok", 0), ("empty", 1)])
    paragraph["qas"][1]["answers"] = []
    parsed = read_language_file(one_paragraph_file(tmp_path / "zh.json", paragraph), "zh")
    assert parsed.questions.qid.tolist() == ["ok"] and parsed.raw_question_count == 2
    assert parsed.flags["dropped_no_answer"] == 1
    assert "question empty: no answer; dropped" in caplog.text


def test_sentence_text_differing_from_context_is_kept_and_counted(
    tmp_path: Path, paragraph_json, one_paragraph_file
) -> None:
    paragraph = paragraph_json("en", 0, 0, 3, [("q", 2)])
    paragraph["sentences"][1] = paragraph["sentences"][1].replace("ends", "stops")  # as an upstream off-by-one would
    parsed = read_language_file(one_paragraph_file(tmp_path / "en.json", paragraph), "en")
    assert parsed.flags["sentence_text_mismatch"] == 1
    assert parsed.sentences.text.tolist()[1] == "river a0 p0 s1 stops here."
    assert parsed.questions.qid.tolist() == ["q"] and parsed.flags["dropped_answer_not_in_sentence"] == 0


def squad_paragraph(sentences: list[str], answers: dict[str, str]) -> dict:
    """A SQuAD-style paragraph written out by hand: ``answers`` maps question id -> answer text (found in the
    context)."""
    context = " ".join(sentences)
    breaks, at = [], 0
    for sentence in sentences:
        breaks.append([at, at + len(sentence)])
        at += len(sentence) + 1
    qas = [
        {
            "id": qid,
            "question": f"Which one is {qid}?",
            "answers": [{"answer_start": context.index(text), "text": text}],
        }
        for qid, text in answers.items()
    ]
    return {"context": context, "sentences": sentences, "sentence_breaks": breaks, "qas": qas}


def test_swapped_sentence_breaks_drop_the_answers_they_would_mislabel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, one_paragraph_file
) -> None:
    # Two sentences of equal length (24 characters), so swapping their breaks keeps every offset valid.
    sentences = ["The Rhine runs to Basel.", "The Rhone flows to Lyon.", "Both are long rivers."]
    assert len(sentences[0]) == len(sentences[1])
    good = squad_paragraph(sentences, {"rhine": "Basel", "rhone": "Lyon", "both": "long rivers"})
    parsed = read_language_file(one_paragraph_file(tmp_path / "good" / "en.json", good), "en")
    assert parsed.questions.set_index("qid").answer_sentence.to_dict() == {"rhine": 0, "rhone": 1, "both": 2}
    assert parsed.flags["dropped_answer_not_in_sentence"] == 0 and parsed.flags["sentence_text_mismatch"] == 0

    swapped = json.loads(json.dumps(good))
    swapped["sentence_breaks"][0], swapped["sentence_breaks"][1] = (
        swapped["sentence_breaks"][1],
        swapped["sentence_breaks"][0],
    )
    parsed = read_language_file(one_paragraph_file(tmp_path / "swapped" / "en.json", swapped), "en")
    # Without the check, "rhine" would be labelled with sentence 1 (the Rhone) and "rhone" with sentence 0.
    assert parsed.questions.qid.tolist() == ["both"]
    assert parsed.flags["dropped_answer_not_in_sentence"] == 2
    assert parsed.flags["sentence_text_mismatch"] == 2
    assert parsed.raw_question_count == 3
    assert (
        "question rhine: answer 'Basel' starts in sentence 1 by sentence_breaks but its text is in sentence 0"
        in caplog.text
    )


def test_answer_also_found_in_another_sentence_stays_with_its_own(tmp_path: Path, one_paragraph_file) -> None:
    paragraph = squad_paragraph(["The Rhine runs to Basel.", "Basel lies on the Rhine."], {"river": "Rhine"})
    parsed = read_language_file(one_paragraph_file(tmp_path / "en.json", paragraph), "en")
    assert parsed.questions.answer_sentence.tolist() == [0] and parsed.flags["dropped_answer_not_in_sentence"] == 0


def test_answer_crossing_its_sentence_is_not_a_misplaced_answer(tmp_path: Path, one_paragraph_file) -> None:
    # Only the part inside its sentence ("Paris.") is looked for: the whole answer stands in sentence 2.
    paragraph = squad_paragraph(
        ["It rained in Paris.", "Then it snowed.", "They said Paris. Then left."], {"cross": "Paris. Then"}
    )
    parsed = read_language_file(one_paragraph_file(tmp_path / "en.json", paragraph), "en")
    assert parsed.questions.qid.tolist() == ["cross"] and parsed.questions.answer_crosses_sentence.tolist() == [True]
    assert parsed.flags["dropped_answer_not_in_sentence"] == 0


def test_answer_text_found_in_no_sentence_is_kept(tmp_path: Path, one_paragraph_file) -> None:
    """An encoding artefact in the answer (as in one XQuAD-R tr answer) cannot be checked against the sentences."""
    paragraph = squad_paragraph(["Gauge 1\u00e2\u0081\u201e2 in.", "Narrow lines."], {"gauge": "1\u00e2\u0081\u201e2"})
    paragraph["sentences"][0] = "Gauge 1\u2044 2 in."
    parsed = read_language_file(one_paragraph_file(tmp_path / "tr.json", paragraph), "tr")
    assert parsed.questions.qid.tolist() == ["gauge"] and parsed.flags["dropped_answer_not_in_sentence"] == 0
