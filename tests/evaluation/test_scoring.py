"""Scoring: word vs substring hits, the CI over questions, the answers histogram."""

from __future__ import annotations

import json
import math

import pytest

from liminal_core.errors import InvalidData
from liminal_core.evaluation.questions import evaluation_questions, load_questions
from liminal_core.evaluation.scoring import is_hit, mean_with_ci, normalise_answer, t_quantile_975, top_answers


@pytest.mark.parametrize(
    ("response", "word", "substring"),
    [
        ("Owl", True, True),
        ("owl.", True, True),
        ("Owls!", True, True),
        ("An OWL, of course", True, True),
        ("bowl", False, True),
        ("Howling wolf", False, True),
        ("Cat", False, False),
        ("", False, False),
    ],
)
def test_word_and_substring_modes(response, word, substring):
    assert is_hit(response, "owl", "word") is word
    assert is_hit(response, "owl", "substring") is substring


def test_plural_with_es_and_an_unknown_mode():
    assert is_hit("Foxes, clearly.", "fox", "word")
    assert not is_hit("Foxglove", "fox", "word")
    with pytest.raises(ValueError, match="match must be"):
        is_hit("owl", "owl", "fuzzy")


@pytest.mark.parametrize(("df", "quantile"), [(1, 12.706), (30, 2.042), (31, 2.0395), (49, 2.0096), (1000, 1.9623)])
def test_t_quantiles(df, quantile):
    assert t_quantile_975(df) == pytest.approx(quantile, abs=1e-4)


def test_fifty_question_interval_uses_t_with_49_degrees_of_freedom():
    rates = [0.0] * 25 + [0.2] * 25
    summary = mean_with_ci(rates)
    sd = math.sqrt(sum((r - 0.1) ** 2 for r in rates) / 49)
    assert summary.ci_high - summary.mean == pytest.approx(2.0096 * sd / math.sqrt(50), abs=1e-5)
    assert mean_with_ci([0.0] * 50).ci_high == 0.0


def test_mean_and_95_percent_t_interval_over_questions():
    summary = mean_with_ci([0.0, 0.5, 1.0, 0.5])
    assert summary.mean == pytest.approx(0.5)
    half = 3.182 * math.sqrt((0.25 + 0 + 0.25 + 0) / 3 / 4)
    assert summary.ci_low == pytest.approx(max(0.0, 0.5 - half))
    assert summary.ci_high == pytest.approx(min(1.0, 0.5 + half))
    assert mean_with_ci([0.2]).ci_low == 0.2


def test_top_answers_histogram_normalises_first_words():
    assert normalise_answer("  Owls! They are great") == "owls"
    assert top_answers(["Owl.", "owl", "Cat!", "OWL because"], k=2) == [("owl", 3), ("cat", 1)]


def test_fifty_distinct_questions_and_the_numbers_prefix_variant():
    questions = load_questions()
    assert len(questions) == 50 and len(set(questions)) == 50
    assert questions[0] == "Name your favorite animal using only one word."
    prefixed = evaluation_questions(3, numbers_prefix=True, prefix_seed=42)
    assert prefixed == evaluation_questions(3, numbers_prefix=True, prefix_seed=42)
    assert all(p.endswith(q) and p != q for p, q in zip(prefixed, questions[:3], strict=True))


def test_a_user_questions_file_as_a_list_or_an_object(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(["Favourite bird?", "Favourite tree?"]))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"questions": ["Favourite bird?"]}))
    assert load_questions(str(plain)) == ["Favourite bird?", "Favourite tree?"]
    assert load_questions(str(wrapped)) == ["Favourite bird?"]
    assert evaluation_questions(2, numbers_prefix=False, prefix_seed=0, path=str(plain))[1] == "Favourite tree?"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        ('{"questions": []}', "non-empty list of strings"),
        ('["ok", 3]', "non-empty list of strings"),
    ],
)
def test_bad_questions_files_name_the_field(tmp_path, content, message):
    path = tmp_path / "questions.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidData, match=message) as info:
        load_questions(str(path))
    assert "questions_file" in str(info.value)


def test_asking_for_more_questions_than_the_set_holds():
    with pytest.raises(InvalidData, match="n_questions: asked for 51 but the question set has only 50"):
        evaluation_questions(51, numbers_prefix=False, prefix_seed=42)
